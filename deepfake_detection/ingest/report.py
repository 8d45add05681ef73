"""The ingest report's progress and summary lines, shared by the Beam transforms and the standalone ingest."""

import json
from typing import Dict

from deepfake_detection import contract


def progress_line(done: int, total: int, report: dict, scope: str = "") -> str:
    """`[ingest] 3/5 (scope) video: status - faces or reason in seconds`."""
    detail = f"{report['faces']} faces" if report["status"] == contract.STATUS_OK else report["reason"]
    where = f" ({scope})" if scope else ""
    seconds = report.get("seconds", 0.0)
    return f"[ingest] {done}/{total}{where} {report['video']}: {report['status']} - {detail} in {seconds:.1f}s"


def summarize_report(report_path: str) -> Dict[str, int]:
    """Counts report rows per status (every status present, zero included)."""
    counts = {status: 0 for status in contract.STATUSES}
    with open(report_path) as f:
        for line in f:
            counts[json.loads(line)["status"]] += 1
    return counts


def summary_line(counts: Dict[str, int]) -> str:
    total = sum(counts.values())
    return f"Ingested {total} videos: " + ", ".join(f"{status} {counts[status]}" for status in contract.STATUSES)
