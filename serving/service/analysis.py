"""The analysis of an upload: one file through decoding, the pipeline's own face sampling and crop, and the model
server; and the service object the routes share (analyser, decoder, history, metrics, admission, keys)."""

import hashlib
import logging
import os
import time
from typing import Any, Callable, List, Optional, Tuple

import cv2
import numpy as np

from deepfake_detection.evaluation import drift, model_card
from serving.client.tf_serving import UNREACHABLE_CODES, GrpcClient, ModelTarget, ServingError
from serving.protocol.tf_serving_api import ModelVersionStatus
from serving.service.admission import Admission, BodyBudget
from serving.service.auth import KeyStore
from serving.service.drift import DriftMonitor
from serving.service.history import Check, History, new_check_id
from serving.service.input_stats import INPUT_STATS_FIELD, face_statistics
from serving.service.jobs import JobRunner, combined_status
from serving.service.media import (
    KIND_IMAGE,
    IsolatedDecoder,
    MediaError,
    RecentThumbnails,
    check_declared_pixels,
    classify,
    public_message,
)
from serving.service.metrics import Metrics
from serving.service.retention import MediaStore
from serving.service.served_model import UNAVAILABLE_MESSAGE, ModelServerCircuit
from serving.service.settings import ServiceSettings
from serving.service.spool import Recorder, Spool, spool_folder
from serving.service.uploads import (
    CLIENT_GONE,
    Upload,
)
from serving.service.video_analysis import VideoAnalyzer

# A grey face, scored to ask the model server which version answers and with which operating point.
PROBE_FACE = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()


class DetectionService:
    """Everything the routes share: the analyzer, the decoder, the history, metrics and background jobs.

    The model server is called through a circuit breaker (`ModelServerCircuit`), with a deadline that follows
    each batch's size; checks go to the history, or to the spool while it is unavailable (`Recorder`); jobs run
    under a lease in the history (`JobRunner`). docs/faults.md says what each fault does.
    """

    def __init__(self, settings: ServiceSettings, model: Any = None, decoder: Optional[IsolatedDecoder] = None):
        self.settings = settings
        target = ModelTarget(settings.model_name, label=settings.model_label)
        self.client = ModelServerCircuit(
            model
            or GrpcClient(settings.model_server, target, settings.model_timeout_s, settings.model_timeout_per_image_s),
            settings.model_probe_interval_s,
        )
        self.analyzer = VideoAnalyzer(
            self.client, settings.ingest_config(), settings.rule, settings.operating_point(), settings.batch_size
        )
        self.decoder = decoder or IsolatedDecoder(settings.decode_timeout_s)
        self.history = History(settings.history_url, settings.history_pool_size)
        self.recorder = Recorder(
            self.history,
            Spool(spool_folder(settings.history_spool_dir, settings.history_url), settings.history_spool_max_bytes),
            settings.history_retry_s,
        )
        self.metrics = Metrics()
        self.thumbnails = RecentThumbnails()
        self.admission = Admission(
            settings.max_in_flight,
            settings.max_queued,
            max_in_flight_per_key=settings.max_in_flight_per_key,
            max_queued_per_key=settings.max_queued_per_key,
        )
        self.bodies = BodyBudget(
            self.admission.capacity * settings.max_body_bytes, self.admission.key_capacity * settings.max_body_bytes
        )
        self.keys = KeyStore(self.history.engine) if settings.auth == "keys" else None
        self.metrics.watch(self.admission)
        self.metrics.watch_faults(self.recorder, self.client)
        self.media = MediaStore(settings.keep_media, settings.keep_media_hours) if settings.keep_media else None
        self.drift = DriftMonitor(self._training_histograms, settings.drift_window_s)
        self.metrics.registry.register(self.drift)
        self.jobs = JobRunner(self, settings.job_lease_s)

    def close(self) -> None:
        """Stops the background threads (job leases, history replay) and the decoder."""
        self.jobs.close()
        self.recorder.close()
        self.decoder.close()

    def model_info(self) -> dict:
        """The served model: its versions' states, the operating point of the version that answers now (from a
        one-face probe, so it is the model server's own), and that version's model card when it can be read."""
        versions = [
            {"version": s.version, "state": ModelVersionStatus.State.Name(s.state)}
            for s in self.client.status().model_version_status
        ]
        probe = self.client.predict([PROBE_FACE])
        point = probe.operating_point
        info = {
            "model_name": self.settings.model_name,
            "versions": versions,
            "model_version": probe.model_version,
            "operating_point": point.to_dict() if point else None,
            "operating_point_override": (self.analyzer.point.to_dict() if self.analyzer.point else None),
            "card": None,
        }
        folder = self._version_folder(probe.model_version)
        if folder:
            info["card"] = model_card.read_card(folder)
        return info

    def card_html(self) -> Optional[str]:
        """The served version's model card as a page, when the service can read the model base path."""
        folder = self._version_folder(self.client.predict([PROBE_FACE]).model_version)
        return model_card.read_card_html(folder) if folder else None

    def _training_histograms(self, version: int) -> Optional[dict]:
        """The served version's training histograms (its `assets.extra/`), when the service can read them."""
        folder = self._version_folder(version)
        return drift.read_training_histograms(folder) if folder else None

    def _version_folder(self, version: Optional[int]) -> Optional[str]:
        if not self.settings.model_base_path or version is None:
            return None
        return os.path.join(self.settings.model_base_path, self.settings.model_name, str(version))

    def analyse(
        self,
        upload: Upload,
        thumbnails: bool,
        progress: Any = None,
        principal: Optional[str] = None,
        abandoned: Callable[[], bool] = lambda: False,
        explain: bool = False,
    ) -> Tuple[int, dict]:
        """(HTTP status, answer) for one file; every outcome is counted, and recorded in the history as
        `principal`'s check unless `abandoned()` says that nobody is left to receive it. The answer's `recorded`
        says whether the check is in the history now (False: spooled until the database is back)."""
        if self.client.is_open:  # refused at once, before decoding: the model server does not answer
            status, answer = model_server_failure(
                upload_facts(upload), "unknown", ServingError("UNAVAILABLE", UNAVAILABLE_MESSAGE)
            )
        else:
            status, answer = analyse_upload(
                self.analyzer, self.decoder, self.settings.model_name, upload, thumbnails, progress, explain
            )
        if abandoned():
            self.metrics.errors.labels("client_gone").inc()
            return CLIENT_GONE, answer
        if status == 200:
            self.metrics.verdicts.labels(answer["verdict"]).inc()
        else:
            self.metrics.errors.labels(answer["error"]["kind"]).inc()
        check_id = new_check_id()
        input_stats = answer.pop(INPUT_STATS_FIELD, None)
        if input_stats:
            self.drift.observe(answer.get("model_version"), input_stats)
        media_uri, media_expires_at = None, None
        if self.media and status == 200:
            media_uri, media_expires_at = self.media.keep(check_id, answer["media_type"], upload.data)
        answer["recorded"] = self.recorder.record(
            Check(
                file_name=upload.file_name,
                media_type=answer["media_type"],
                size_bytes=answer["size_bytes"],
                sha256=answer["sha256"],
                verdict=answer.get("verdict"),
                fake_probability=answer.get("fake_probability"),
                model_name=self.settings.model_name if status == 200 else None,
                model_version=answer.get("model_version"),
                error=answer["error"]["message"] if status != 200 else None,
                principal=principal,
                check_id=check_id,
                input_stats=input_stats,
                media_uri=media_uri,
                media_expires_at=media_expires_at,
            )
        )
        answer["check_id"] = check_id
        return status, answer

    def analyse_all(
        self,
        uploads: List[Upload],
        thumbnails: bool,
        progress: Any = None,
        principal: Optional[str] = None,
        abandoned: Callable[[], bool] = lambda: False,
        explain: bool = False,
    ) -> Tuple[int, dict]:
        """Every file in turn; once `abandoned()` (the client went away) the rest are not analysed at all."""
        results = []
        for index, upload in enumerate(uploads):
            if abandoned():
                self.metrics.errors.labels("client_gone").inc()
                return CLIENT_GONE, {"results": results}

            def report(stage: str, fraction: float, index: int = index, name: str = upload.file_name) -> None:
                if progress:
                    progress(index, len(uploads), name, stage, fraction)

            status, answer = self.analyse(upload, thumbnails, report, principal, abandoned, explain)
            if status == CLIENT_GONE:
                return CLIENT_GONE, {"results": results}
            results.append({"status": status, **answer})
        return combined_status([r["status"] for r in results]), {"results": results}


def analyse_upload(
    analyzer: VideoAnalyzer,
    decoder: IsolatedDecoder,
    model_name: str,
    upload: Upload,
    thumbnails: bool = False,
    progress: Any = None,
    explain: bool = False,
) -> Tuple[int, dict]:
    """(HTTP status, answer) for one file: its verdict, or the error that stopped it. Never raises for bad media.

    An image's declared resolution is checked from its header, before it is decoded. With `explain`, each
    face carries its crop box and the map of where it looks manipulated (`VideoAnalyzer.analyse_frames`).
    """
    base = upload_facts(upload)
    media_type = "unknown"
    try:
        kind, media_format = classify(upload.data)
        media_type = f"{kind}/{media_format}"
        if kind == KIND_IMAGE:
            check_declared_pixels(upload.data, media_format, analyzer.ingest_config.max_pixels)
        report = progress or (lambda stage, fraction: None)
        report("decoding", 0.0)
        started = time.perf_counter()
        decoded = decoder.decode(upload.data, kind, media_format, analyzer.ingest_config)
        verdict = analyzer.analyse_frames(decoded.frames, time.perf_counter() - started, thumbnails, report, explain)
    except MediaError as e:
        error = {"kind": e.kind, "message": public_message(e.message), **({"limit": e.limit} if e.limit else {})}
        return e.status, {**base, "media_type": media_type, "status": e.status, "error": error}
    except ServingError as e:
        logging.warning("The model server failed on %s: %s", upload.file_name, e)
        return model_server_failure(base, media_type, e)
    answer = {**base, "media_type": media_type, "model_name": model_name, **verdict.to_dict()}
    answer.update(width=decoded.width, height=decoded.height)
    answer[INPUT_STATS_FIELD] = face_statistics(decoded.frames, answer["faces"])
    return 200, answer


def upload_facts(upload: Upload) -> dict:
    """What every answer about a file says of it: its name, size and SHA-256."""
    return {
        "file_name": upload.file_name,
        "size_bytes": len(upload.data),
        "sha256": hashlib.sha256(upload.data).hexdigest(),
    }


def model_server_failure(base: dict, media_type: str, error: ServingError) -> Tuple[int, dict]:
    """(503, answer) for a file the model server failed: the cause for the user, the details (addresses,
    gRPC's own text) for the log only."""
    logging.warning("The model server failed on %s: %s", base["file_name"], error)
    error_body = {"kind": "model_server", "message": model_server_message(error)}
    return 503, {**base, "media_type": media_type, "status": 503, "error": error_body}


def model_server_message(error: ServingError) -> str:
    """What a user reads of a model server's failure: the cause and its gRPC code, never an address or detail."""
    if error.status in UNREACHABLE_CODES:
        return UNAVAILABLE_MESSAGE
    return f"the model server refused the request ({error.status})"
