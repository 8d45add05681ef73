"""Background jobs (`POST /v1/jobs`): an admitted request analysed in a thread, its progress and each finished
file's result in the shared database, under a lease, so that a job outlives the replica that ran it.

Each replica has an id; a job it runs is its own (`owner`) for as long as it
renews the job's lease (every `lease_s / 3`, with the job's latest document).
A replica that dies stops renewing; once the lease has run out, any replica
(another, or the same one restarted) claims the job in one atomic update and
either resumes it from the file after its last finished one, when it can read
the job's files again, or marks it failed with the reason, keeping the results
of the files already finished. Uploads are held in the memory of the replica
that received them (`MemoryMedia`), so a job whose replica died cannot be
resumed elsewhere; a media store that keeps them (`JobMedia`) makes that
possible. A replica that lost its lease (another took the job over) stops at
its next file and writes nothing more.

A job stops, queued or between two stages of a file, once its owner cancels
it (`DELETE /v1/jobs/<id>`, on any replica: the state `cancelling` in the
database) or the key that created it is revoked; it ends `cancelled`. Face
thumbnails never enter the job's document (they are media): this replica
holds them for a while (`RecentThumbnails`) and `GET /v1/jobs/<id>` on it puts
them back.

While the database is unavailable a job goes on: its progress is written when
the database is back (the next renewal), and its checks are spooled like any.
"""

import logging
import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol

from serving.service.admission import Place, WorkCancelledError
from serving.service.history import CANCELLED, CANCELLING, HistoryUnavailableError
from serving.service.uploads import CLIENT_GONE, Upload

if TYPE_CHECKING:  # the service owns its job runner: a run-time import would be circular
    from serving.service.analysis import DetectionService

# Why a job taken over from a dead replica cannot go on, when its files are gone with it.
FILES_GONE = (
    "the replica running this job stopped, and the uploaded files were held only in its memory: "
    "upload the files not yet analysed again"
)


class JobMedia(Protocol):
    """Where a job's uploads can be read again, by the replica that takes the job over."""

    def put(self, job_id: str, uploads: List[Upload]) -> None: ...

    def get(self, job_id: str) -> Optional[List[Upload]]: ...

    def drop(self, job_id: str) -> None: ...


class MemoryMedia:
    """A job's uploads in this process's memory, until the job ends: gone with the process."""

    def __init__(self) -> None:
        self._uploads: Dict[str, List[Upload]] = {}

    def put(self, job_id: str, uploads: List[Upload]) -> None:
        self._uploads[job_id] = uploads

    def get(self, job_id: str) -> Optional[List[Upload]]:
        return self._uploads.get(job_id)

    def drop(self, job_id: str) -> None:
        self._uploads.pop(job_id, None)


def replica_id() -> str:
    """This process's name as a job owner: its host and process id, and a random part (a pid is reused)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class _RunningJob:
    """A job this replica runs: its document, and whether another replica has taken it over."""

    def __init__(self, document: dict, principal: Optional[str], key_id: Optional[str] = None):
        self.document = document
        self.principal = principal
        self.key_id = key_id
        self.lost = False
        self.lock = threading.Lock()


class JobRunner:
    """Starts, renews, takes over and resumes jobs for one replica (`owner`)."""

    def __init__(self, service: "DetectionService", lease_s: float, media: Optional[JobMedia] = None):
        self.service = service
        self.history = service.history
        self.lease_s = lease_s
        self.media = media or MemoryMedia()
        self.owner = replica_id()
        self._running: Dict[str, _RunningJob] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._renew_and_sweep, name="job-leases", daemon=True)
        self._thread.start()

    def start(
        self,
        uploads: List[Upload],
        thumbnails: bool,
        place: Place,
        principal: Optional[str] = None,
        explain: bool = False,
        key_id: Optional[str] = None,
    ) -> str:
        """Runs an admitted request in the background: `queued` until a slot frees, then `running`; `key_id`
        is the key that asked for it (revoking it cancels the job).

        The job is created in the shared database first (`HistoryUnavailableError` if it cannot be), so any
        replica on it answers `GET /v1/jobs/<id>` (to `principal`, or an admin). The job's thread owns
        `place` once started; a job's checks are recorded even if its creator has gone, since any client
        may fetch the job later.
        """
        job_id = uuid.uuid4().hex
        document = {
            "job_id": job_id,
            "state": "queued",
            "files": len(uploads),
            "file_index": 0,
            "stage": "queued",
            "thumbnails": thumbnails,
            "explain": explain,
            "results": [],
        }
        self.history.save_job(document, principal, self.owner, self.lease_s)
        self._run(_RunningJob(document, principal, key_id), uploads, place)
        return job_id

    def _run(self, job: _RunningJob, uploads: List[Upload], place: Place) -> None:
        job_id = job.document["job_id"]
        self.media.put(job_id, uploads)
        with self._lock:
            self._running[job_id] = job

        def work() -> None:
            try:
                self.service.admission.run(
                    place,
                    lambda: self._analyse(job, uploads),
                    lambda: self._update(job, state="running"),
                    lambda: self._cancelled(job),
                )
            except WorkCancelledError:
                self._update(job, state=CANCELLED, stage=CANCELLED)
            except Exception:  # noqa: BLE001 - a failed job reports that it failed; the service goes on
                logging.exception("Job %s failed", job_id)
                message = f"the job failed on an internal error (the service's log has job {job_id})"
                self._update(job, state="failed", error=message)
            finally:
                self._finish(job)

        threading.Thread(target=work, name=f"job-{job_id[:8]}", daemon=True).start()

    def _analyse(self, job: _RunningJob, uploads: List[Upload]) -> None:
        """Analyses the files after the last finished one, writing each result into the job as it finishes."""
        results = job.document["results"]
        thumbnails, explain = job.document["thumbnails"], job.document["explain"]
        for index in range(len(results), len(uploads)):
            upload = uploads[index]

            def progress(stage: str, fraction: float, index: int = index, name: str = upload.file_name) -> None:
                if self._cancelled(job):
                    raise WorkCancelledError()
                self._update(
                    job,
                    file_index=index,
                    file_name=name,
                    stage=stage,
                    progress=round((index + fraction) / len(uploads), 3),
                )

            status, answer = self.service.analyse(
                upload, thumbnails, progress, job.principal, lambda: job.lost, explain=explain
            )
            if status == CLIENT_GONE:
                return
            result = {"status": status, **answer}
            self.service.thumbnails.take_out(job.document["job_id"], {"results": [result]}, first=index)
            self._update(job, results=[*results, result])
            results = job.document["results"]
        status = combined_status([r["status"] for r in results])
        self._update(job, state="done", status=status, progress=1.0, stage="done")

    def _update(self, job: _RunningJob, **changes: Any) -> None:
        """Changes the job and writes it; while the database is unavailable the change waits for the next
        renewal. A job another replica has taken over is not written any more."""
        with job.lock:
            if job.lost:
                return
            job.document = {**job.document, **changes}
            self._write(job)

    def _cancelled(self, job: _RunningJob) -> bool:
        """Whether the job's owner asked to cancel it (on any replica), or its key was revoked; a database that
        cannot be asked cancels nothing."""
        keys = self.service.keys
        if job.key_id is not None and keys is not None and not keys.is_live(job.key_id):
            return True
        try:
            return self.history.job_state(job.document["job_id"]) == CANCELLING
        except HistoryUnavailableError:
            return False

    def _write(self, job: _RunningJob) -> None:
        try:
            if not self.history.save_job(job.document, job.principal, self.owner, self.lease_s):
                job.lost = True
                logging.warning("Job %s was taken over by another replica: this one stops it", job.document["job_id"])
        except HistoryUnavailableError:
            pass

    def _finish(self, job: _RunningJob) -> None:
        """Forgets a job whose final state is written; one whose final write failed stays to be renewed."""
        job_id = job.document["job_id"]
        if job.lost or self._written_final(job_id, job.document["state"]):
            with self._lock:
                self._running.pop(job_id, None)
            self.media.drop(job_id)

    def _written_final(self, job_id: str, state: str) -> bool:
        try:
            stored = self.history.job(job_id)
        except HistoryUnavailableError:
            return False
        return stored is not None and stored["state"] == state and state not in ("queued", "running")

    def _renew_and_sweep(self) -> None:
        while not self._stopped.wait(self.lease_s / 3):
            try:
                self.renew()
                self.take_over_orphans()
            except HistoryUnavailableError:
                continue

    def renew(self) -> None:
        """Renews the lease of every job this replica runs, writing its latest document."""
        with self._lock:
            running = list(self._running.values())
        for job in running:
            with job.lock:
                if not job.lost:
                    self._write(job)
            if job.document["state"] not in ("queued", "running"):
                self._finish(job)

    def take_over_orphans(self) -> None:
        """Claims every job whose owner's lease ran out, and resumes it when its files can be read again (and a
        queue place is free: else it waits for the next sweep), or marks it failed, keeping its results."""
        for job_id in self.history.orphaned_jobs():
            uploads = self.media.get(job_id)
            place = None
            if uploads is not None:
                place, _ = self.service.admission.try_admit(None)
                if place is None:
                    return
            claimed = self.history.claim_job(job_id, self.owner, self.lease_s)
            if claimed is None:
                if place is not None:
                    place.give_back()
                continue
            document, principal = claimed
            job = _RunningJob({"thumbnails": True, "explain": False, "results": [], **document}, principal)
            finished = len(job.document["results"])
            if uploads is None or place is None:
                logging.warning("Job %s: its replica stopped after %d files; marked failed", job_id, finished)
                self.service.metrics.jobs_taken_over.labels("failed").inc()
                self._update(job, state="failed", stage="failed", error=FILES_GONE)
                continue
            logging.info("Job %s: its replica stopped after %d files; resumed here", job_id, finished)
            self.service.metrics.jobs_taken_over.labels("resumed").inc()
            job.document["resumed_at_file"] = finished
            self._run(job, uploads, place)

    def close(self) -> None:
        self._stopped.set()


def combined_status(statuses: List[int]) -> int:
    """One file: its own status. Several: 200 when all succeeded, their shared code when all failed alike, else 207."""
    if len(set(statuses)) == 1:
        return statuses[0]
    return 207
