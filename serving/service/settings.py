"""The detection service's settings: its limits, the model it serves, the history, authentication.

One frozen dataclass that the service, `deepfake-pipeline detect --local` and
the tests build (the service from its flags, in `detection_service.parse_args`),
and the rule that picks authentication from where the service listens.
"""

import dataclasses
from typing import Optional, Sequence, Tuple

from deepfake_detection.evaluation import video_scores
from deepfake_detection.evaluation.operating_point import OperatingPoint
from deepfake_detection.ingest.ingest_config import IngestConfig

# The names a browser on the service's own machine reaches it by: allowed whatever --host says.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Hosts that mean "every interface", never a name a browser sends.
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    model_server: str = "localhost:8500"
    model_name: Optional[str] = None  # None: the model the model server has (served_model.resolve)
    model_label: Optional[str] = None
    history_url: str = "sqlite:///outputs/detection_history.sqlite"
    history_pool_size: int = 5
    max_body_bytes: int = 200 * 1024 * 1024
    max_files: int = 20
    decode_timeout_s: float = 60.0
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    frames_per_video: int = 32
    rule: str = video_scores.RULE_MEAN
    threshold: Optional[float] = None
    real_threshold: Optional[float] = None
    model_base_path: Optional[str] = None
    batch_size: int = 32
    max_in_flight: int = 2
    max_queued: int = 8
    # "keys": every /v1/* route needs an API key; "none": one person's service on loopback.
    auth: str = "none"
    # Each key's share: analyses running, and requests waiting, at most (beyond them, 429).
    max_in_flight_per_key: int = 1
    max_queued_per_key: int = 3
    head_timeout_s: float = 10.0
    read_timeout_s: float = 15.0
    body_timeout_s: float = 120.0
    unready_after_s: float = 60.0
    # A model-server call's deadline: this much, plus this much per image in its batch (32 faces: 11 s).
    model_timeout_s: float = 3.0
    model_timeout_per_image_s: float = 0.25
    # How often an open circuit probes the model server, and how stale the cached readiness may get.
    model_probe_interval_s: float = 1.0
    # Checks the history could not take wait here (None: beside a SQLite history, else outputs/history_spool).
    history_spool_dir: Optional[str] = None
    history_spool_max_bytes: int = 64 * 1024 * 1024
    history_retry_s: float = 5.0
    # A job's lease: a replica that has not renewed it for this long is taken to be dead.
    job_lease_s: float = 30.0
    # Uploads kept for feedback (`retention`): a local folder, or None to keep none (the default), and how long.
    keep_media: Optional[str] = None
    keep_media_hours: float = 24.0
    # The rolling window of uploads whose drift from the training data /metrics exports (`drift`).
    drift_window_s: float = 3600.0
    # Serve /metrics on this port alone (for a scraper that holds no key), not on the service's port.
    metrics_port: Optional[int] = None
    # Jobs not updated for this long are forgotten, on a timer.
    jobs_kept_s: float = 24 * 3600.0
    # Without keys: the `Host` names the service answers (`allowed_hosts`; "*" for any).
    allowed_hosts: Tuple[str, ...] = LOOPBACK_NAMES

    def operating_point(self) -> Optional[OperatingPoint]:
        """A hand-set point (both thresholds, no calibration) that overrides the model's; None uses the model's."""
        if self.threshold is None and self.real_threshold is None:
            return None
        if self.threshold is None or self.real_threshold is None:
            raise ValueError(
                "Set both --threshold and --real-threshold to override the model's fitted operating point, or neither"
            )
        return OperatingPoint(self.threshold, self.real_threshold)

    def ingest_config(self) -> IngestConfig:
        return IngestConfig(
            frames_per_video=self.frames_per_video,
            max_file_bytes=self.max_body_bytes,
            max_duration_s=self.max_duration_s,
            max_pixels=self.max_pixels,
        )


def auth_mode(host: str, requested: Optional[str], allow_unauthenticated_remote: bool) -> str:
    """The service's authentication, from where it listens: without keys, anyone who reaches the port reads
    everyone's history, so keys are the default beyond loopback and `none` there must be asked for twice."""
    loopback = host == "localhost" or _is_loopback_address(host)
    if requested is None:
        return "none" if loopback else "keys"
    if requested == "none" and not loopback and not allow_unauthenticated_remote:
        raise ValueError(
            f"--auth none on --host {host} would serve everyone's history to anyone who reaches it: "
            "use --auth keys, or add --allow-unauthenticated-remote"
        )
    return requested


def _is_loopback_address(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str, extra: Sequence[str] = ()) -> Tuple[str, ...]:
    """The `Host` names a service without keys answers: loopback's, `--host`'s unless it is a wildcard, and
    `extra` (`--allowed-hosts`; `*` allows any)."""
    names = [*LOOPBACK_NAMES, *([] if bind_host in WILDCARD_HOSTS else [bind_host]), *extra]
    return tuple(dict.fromkeys(name.strip().lower().strip("[]") for name in names if name.strip()))
