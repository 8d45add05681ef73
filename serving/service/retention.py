"""Media kept only when asked (`--keep-media FOLDER --keep-media-hours H`), so that feedback can keep them.

By default the service stores no upload at all: a check keeps the file's
name, type, size and SHA-256, and feedback its label. With `--keep-media`
each analysed upload is written to the folder as `<check_id>.<format>` and
kept for H hours; a check flagged with feedback keeps its upload until
`deepfake-pipeline feedback export` has copied it into a span, and the
sweeper deletes the rest (expired and not flagged, or exported) every
`SWEEP_EVERY_S`. The folder is a local path (or `file://`): the service's
image has no TensorFlow and no fsspec, so remote filesystems are refused
at start rather than half supported (docs/feedback.md).
"""

import datetime
import logging
import os
import threading
import urllib.parse
from typing import Optional, Tuple

from serving.service.history import History

# How often the sweeper looks for media to delete.
SWEEP_EVERY_S = 300.0
_FILE_SCHEME = "file://"


def local_folder(uri: str) -> str:
    """The local folder `--keep-media` names (a path or a file:// URI); ValueError for any other scheme."""
    if uri.startswith(_FILE_SCHEME):
        return urllib.parse.urlparse(uri).path
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive, a path
        raise ValueError(
            f"--keep-media {uri}: only local folders (or file://) are supported here; the service's image has "
            "no TensorFlow or fsspec to open other filesystems: mount the bucket (e.g. a CSI volume) instead"
        )
    return uri


class MediaStore:
    """The folder where uploads are kept, and for how long."""

    def __init__(self, uri: str, hours: float):
        if hours <= 0:
            raise ValueError(f"--keep-media-hours must be positive, not {hours}")
        self.folder = os.path.abspath(local_folder(uri))
        self.kept_for = datetime.timedelta(hours=hours)
        os.makedirs(self.folder, exist_ok=True)

    def keep(self, check_id: str, media_type: str, data: bytes) -> Tuple[str, datetime.datetime]:
        """Writes an upload (through a temporary name and one rename, so a reader never sees half of it);
        returns where, and until when it is kept unless flagged."""
        extension = media_type.split("/")[-1] if "/" in media_type else "bin"
        path = os.path.join(self.folder, f"{check_id}.{extension}")
        staging = path + ".partial"
        with open(staging, "wb") as f:
            f.write(data)
        os.replace(staging, path)
        return path, datetime.datetime.now(datetime.timezone.utc) + self.kept_for


def read_media(uri: str) -> bytes:
    with open(local_folder(uri), "rb") as f:
        return f.read()


def sweep(history: History, now: Optional[datetime.datetime] = None) -> int:
    """Deletes the kept media whose time is up and that nobody flagged, and those already exported; returns
    how many. A file already gone is forgotten all the same, so a sweep never stops on one."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    forgotten = 0
    for check_id, uri in history.media_to_forget(now):
        try:
            os.remove(local_folder(uri))
        except FileNotFoundError:
            pass
        history.forget_media(check_id)
        forgotten += 1
    return forgotten


class Sweeper:
    """`sweep` every `every_s` on a daemon thread, until `stop`."""

    def __init__(self, history: History, every_s: float = SWEEP_EVERY_S):
        self._history = history
        self._every_s = every_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="media-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self._every_s):
            try:
                swept = sweep(self._history)
            except Exception:  # noqa: BLE001 - a failed sweep (database away) is tried again next time
                logging.exception("The media sweep failed")
                continue
            if swept:
                logging.info("Deleted %d kept upload(s) past their time", swept)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(self._every_s)
