"""Background jobs (`POST /v1/jobs`): an admitted request analysed in a thread, its progress in the shared database."""

import logging
import threading
import uuid
from typing import Any, List, Optional

from serving.service.admission import Place, WorkCancelledError
from serving.service.analysis import DetectionService
from serving.service.history import CANCELLED, CANCELLING
from serving.service.uploads import (
    Upload,
)


def start_job(
    service: DetectionService,
    uploads: List[Upload],
    thumbnails: bool,
    place: Place,
    principal: Optional[str] = None,
    explain: bool = False,
    key_id: Optional[str] = None,
) -> str:
    """Runs an admitted request in the background: `queued` until a slot frees, then `running`.

    Every change of the job is written to the shared database, so any
    replica on it answers `GET /v1/jobs/<id>` (to `principal`, or an
    admin). The job's thread owns `place` once started; a job's checks are
    recorded even if its creator has gone, since any client may fetch the
    job later. The job stops, queued or between two stages of a file, once
    its owner cancels it (`DELETE /v1/jobs/<id>`, on any replica) or the key
    `key_id` that created it is revoked; it ends `cancelled`.
    """
    job_id = uuid.uuid4().hex
    job = {"job_id": job_id, "state": "queued", "files": len(uploads), "file_index": 0, "stage": "queued"}
    service.history.save_job(job, principal)

    def update(**changes: Any) -> None:
        job.update(changes)
        service.history.save_job(job)

    def cancelled() -> bool:
        if service.history.job_state(job_id) == CANCELLING:
            return True
        return key_id is not None and service.keys is not None and not service.keys.is_live(key_id)

    def progress(index: int, total: int, name: str, stage: str, fraction: float) -> None:
        if cancelled():
            raise WorkCancelledError()
        update(file_index=index, file_name=name, stage=stage, progress=round((index + fraction) / total, 3))

    def run() -> None:
        try:
            status, answer = service.admission.run(
                place,
                lambda: service.analyse_all(uploads, thumbnails, progress, principal, explain=explain),
                lambda: update(state="running"),
                cancelled,
            )
            service.thumbnails.take_out(job_id, answer)  # media: never in the database
            update(state="done", status=status, progress=1.0, stage="done", **answer)
        except WorkCancelledError:
            update(state=CANCELLED, stage=CANCELLED)
        except Exception:  # noqa: BLE001 - a failed job reports that it failed; the service goes on
            logging.exception("Job %s failed", job_id)
            update(state="failed", error=f"the job failed on an internal error (the service's log has job {job_id})")

    threading.Thread(target=run, name=f"job-{job_id[:8]}", daemon=True).start()
    return job_id
