"""Feedback on verdicts: `POST /v1/checks/{check_id}/feedback` with `{"label": "real"|"fake", "note": "..."}`.

The person who saw a wrong verdict often knows the truth; their word is kept
beside the check (label, note, time) so that `deepfake-pipeline feedback
export` can turn the flagged uploads the service kept (`retention`) into a
span the next training run reads. A check is found by its opaque
`check_id`, and only by its owner (or an admin, or anyone without keys):
another principal's check answers 404, like a missing one.
"""

import json
from typing import Optional, Tuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from serving.service.analysis import DetectionService
from serving.service.routes import error_response, owner_of

LABELS = ("real", "fake")
MAX_NOTE_CHARS = 1024
# A feedback body is a label and a short note: anything longer is refused before it is parsed.
MAX_BODY_BYTES = 8 * 1024


def parse_feedback(body: bytes) -> Tuple[str, Optional[str]]:
    """(label, note) of a feedback body; ValueError with what is wrong."""
    try:
        document = json.loads(body)
    except ValueError as e:
        raise ValueError(f"the body is not JSON: {e}") from None
    if not isinstance(document, dict):
        raise ValueError('send a JSON object: {"label": "real" or "fake", "note": "..."}')
    label, note = document.get("label"), document.get("note")
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise ValueError(f"note must be text of at most {MAX_NOTE_CHARS} characters")
    return label, note


def add_feedback_routes(app: FastAPI, service: DetectionService) -> None:
    """`POST /v1/checks/{check_id}/feedback`: 201 with the check's feedback, 404 for a check the caller may not
    see, 422 for a bad label or note, 413 for a body over `MAX_BODY_BYTES`."""

    @app.post("/v1/checks/{check_id}/feedback", status_code=201)
    async def feedback(request: Request, check_id: str) -> JSONResponse:
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                return error_response("body_size", f"a feedback body is at most {MAX_BODY_BYTES} bytes", 413)
        try:
            label, note = parse_feedback(bytes(body))
        except ValueError as e:
            return error_response("bad_feedback", str(e), 422)
        check = await run_in_threadpool(record_feedback, service, check_id, owner_of(request), label, note)
        if check is None:
            return error_response("not_found", f"no check {check_id}", 404)
        return JSONResponse(check, status_code=201)


def record_feedback(
    service: DetectionService, check_id: str, owner: Optional[str], label: str, note: Optional[str]
) -> Optional[dict]:
    """The check with its new feedback, and whether its upload is kept for export (`media_kept`: with
    `--keep-media`, until exported); None when `owner` may not see it."""
    check = service.history.set_feedback(check_id, owner, label, note)
    if check is None:
        return None
    return {**check, "media_kept": service.history.check(check_id)["media_uri"] is not None}
