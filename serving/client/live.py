"""`deepfake-pipeline live SOURCE`: a rolling verdict on a camera, a stream or a file as it plays.

SOURCE is a camera index (`0`), a stream URL (RTSP, HTTP, HLS: whatever
OpenCV's FFmpeg opens) or a video file, read as fast as it decodes or, with
`--realtime`, at its own frame rate. A reader thread keeps only the newest
frame of a live source (a camera, a stream, a file with `--realtime`), so a
verdict never queues behind stale frames: when the analysis is slower than
the source, frames are dropped, not delayed. Each update analyses the last
`--window` frames taken (at most `--sample-fps` a second of media time) with
the detection service's own `VideoAnalyzer` (the ingest's detection, tracks,
person rule and crops, the version's operating point), so its verdict, tiers
and per-person tracks are those `detect` gives for the same frames; a track id
holds within a window. The text output prints a line when the verdict or a
person's tier changes; `--json` writes one JSON line per update:
`{"media_time_s", "latency_s", "verdict", "fake_probability", "persons":
[{"track_id", "fake_probability", "tier", "box"}]}`, `latency_s` being the
wall time from reading the newest frame used to the line, `box` the person's
face `[x, y, w, h]` in the newest frame of the window it was seen in.
`--local` runs the model in this process (`--model-dir`, `--runtime` as for
`detect`); otherwise each frame taken goes, as a JPEG, to the detection
service's `/v1/live` WebSocket route (`--service`, `--api-key`), whose updates
print the same way. A frame is sent once the previous one's update is back,
so the service analyses each frame taken and, from a live source, only the
newest waits here.
"""

import argparse
import collections
import contextlib
import functools
import json
import os
import queue
import sys
import threading
import time
from typing import Callable, Deque, Iterator, Optional, Tuple

LIVE_HELP = "a rolling verdict on a camera, a stream or a file as it plays"
FILE_FPS = 30.0  # a file that states no frame rate plays at this one
Frame = Tuple[int, float, float, object]  # (index, media time s, wall time read, BGR image)


def open_source(source: str):  # noqa: ANN201 - a cv2.VideoCapture
    """A camera index, a stream URL or a file, opened by OpenCV; raises ValueError when it cannot be."""
    import cv2

    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise ValueError(f"Cannot open {source!r}: not a camera index, a stream OpenCV reads, or a video file")
    return capture


class FrameReader:
    """Reads a source on a thread. Live (a camera, a stream, `--realtime`): only the newest frame waits, older
    ones are dropped. Not live (a file read as fast as it goes): every frame waits its turn."""

    def __init__(self, capture, live: bool, fps: float = 0.0, paced: bool = False):  # noqa: ANN001 - VideoCapture
        """`fps` > 0 (a file): media time is the frame's index over it, and `paced` plays it at that rate; else
        (a camera, a stream) media time is the wall time since the first frame."""
        self.capture, self.live, self.fps, self.paced = capture, live, fps, paced
        self.frames: queue.Queue[Optional[Frame]] = queue.Queue(maxsize=1)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        started, index = time.monotonic(), 0
        try:
            while not self.stopped.is_set():
                if self.paced:
                    time.sleep(max(0.0, started + index / self.fps - time.monotonic()))
                ok, image = self.capture.read()
                if not ok:
                    break
                now = time.monotonic()
                media_time = index / self.fps if self.fps else now - started
                self._offer((index, media_time, now, image))
                index += 1
        finally:
            self._offer(None)

    def _offer(self, frame: Optional[Frame]) -> None:
        while not self.stopped.is_set():
            if self.live and self.frames.full():
                with contextlib.suppress(queue.Empty):  # the consumer took it meanwhile: put below
                    self.frames.get_nowait()
            try:
                self.frames.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.frames.get()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.capture.release()


def taken(reader: FrameReader, sample_fps: float) -> Iterator[Frame]:
    """The frames of `reader` taken for analysis: at most `sample_fps` a second of media time."""
    last_taken = None
    for frame in reader:
        if last_taken is not None and frame[1] - last_taken < 1.0 / sample_fps - 1e-6:  # float-safe
            continue
        last_taken = frame[1]
        yield frame


def updates(reader: FrameReader, analyzer, point, window: int, sample_fps: float) -> Iterator[dict]:  # noqa: ANN001
    """One update per frame taken: the verdict of the last `window` frames taken, at most `sample_fps` a second
    of media time; persons are read at the hand-set point (`--threshold`), else at the version's `point`."""
    from deepfake_detection.ingest.sampling import SampledFrame
    from serving.service.live_window import window_update

    frames: Deque[SampledFrame] = collections.deque(maxlen=window)
    for index, media_time, read_at, image in taken(reader, sample_fps):
        frames.append(SampledFrame(index, media_time, image))
        yield window_update(analyzer, frames, read_at, point)


class LiveRouteError(Exception):
    """The service closed the live socket or refused it: the message says why (its close code and reason)."""


def live_url(service: str, window: int) -> str:
    """The `/v1/live` WebSocket URL of a service's HTTP(S) base URL."""
    base = service.rstrip("/")
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[-1]}/v1/live?window={window}"


def service_updates(
    reader: FrameReader, service: str, api_key: Optional[str], window: int, sample_fps: float
) -> Iterator[dict]:
    """The service's update for each frame taken, sent as a JPEG over `/v1/live` once the previous update is
    back; `latency_s` is measured here, from reading the frame to its update's arrival. A frame the service
    refuses is reported on stderr and skipped; a closed socket raises LiveRouteError."""
    import struct

    import cv2
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with connect(live_url(service, window), additional_headers=headers, max_size=None) as socket:
            for _, media_time, read_at, image in taken(reader, sample_fps):
                socket.send(struct.pack(">d", media_time) + cv2.imencode(".jpg", image)[1].tobytes())
                update = json.loads(socket.recv())
                if "error" in update:
                    print(f"{media_time:8.2f} s  refused: {update['error']['message']}", file=sys.stderr)
                    continue
                yield {**update, "latency_s": round(time.monotonic() - read_at, 4)}
    except ConnectionClosed as e:
        closed = e.rcvd
        raise LiveRouteError(
            f"The service closed the live socket: {closed.code} {closed.reason}" if closed else str(e)
        ) from None
    except (InvalidStatus, OSError) as e:
        raise LiveRouteError(f"Cannot open {live_url(service, window)}: {e}") from None


def _probability(value: Optional[float]) -> str:
    return "" if value is None else f" {value:.2f}"


def text_line(update: dict) -> str:
    """An update for people: media time, verdict, each person's tier, latency."""
    persons = ", ".join(
        f"person {p['track_id']}: {p['tier']}{_probability(p['fake_probability'])}" for p in update["persons"]
    )
    return (
        f"{update['media_time_s']:8.2f} s  {update['verdict']}{_probability(update['fake_probability'])}"
        f"{'  ' + persons if persons else ''}  [latency {update['latency_s']:.2f} s]"
    )


def _tiers(update: dict) -> tuple:
    return update["verdict"], tuple((p["track_id"], p["tier"]) for p in update["persons"])


def live_analyzer(model_dir: str, settings_overrides: dict, runtime: str):  # noqa: ANN201 - a VideoAnalyzer
    """`detect --local`'s analyzer that detects each frame and scores each face once (`RememberingDetector`,
    `RememberingModel`)."""
    from deepfake_detection.ingest.detector import FaceDetector
    from serving.client.detect import local_video_analyzer
    from serving.service.live_window import remembering_analyzer
    from serving.service.settings import ServiceSettings

    detector = FaceDetector.from_config(ServiceSettings(**settings_overrides).ingest_config())
    return remembering_analyzer(local_video_analyzer(model_dir, settings_overrides, runtime, detector), detector)


def local_updates(args: argparse.Namespace) -> Callable[[FrameReader], Iterator[dict]]:
    """`--local`'s updates of a reader, the model loaded first (a stream does not wait for it); ValueError for a
    model, runtime or setting it cannot use."""
    from serving.client.detect import resolve_model_dir, runtime_problem
    from serving.client.runtimes import read_operating_point

    problem = runtime_problem(args.runtime, args.local)
    model_dir, error = resolve_model_dir(args.model_dir, args.serving_dir)
    if problem or error:
        raise ValueError(problem or error)
    overrides = {"rule": args.rule, "threshold": args.threshold, "real_threshold": args.real_threshold}
    analyzer, point = live_analyzer(model_dir, overrides, args.runtime), read_operating_point(model_dir)
    return lambda reader: updates(reader, analyzer, point, args.window, args.sample_fps)


def open_reader(args: argparse.Namespace) -> FrameReader:
    import cv2

    capture = open_source(args.source)
    is_file = os.path.isfile(args.source)
    fps = (capture.get(cv2.CAP_PROP_FPS) or FILE_FPS) if is_file else 0.0
    return FrameReader(capture, live=not is_file or args.realtime, fps=fps, paced=is_file and args.realtime)


def live(args: argparse.Namespace) -> int:
    try:
        if args.local:
            stream = local_updates(args)
        else:
            stream = functools.partial(
                service_updates,
                service=args.service,
                api_key=args.api_key,
                window=args.window,
                sample_fps=args.sample_fps,
            )
        reader = open_reader(args)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    shown = None
    # Ctrl-C ends a live session; the updates so far are printed.
    with contextlib.suppress(KeyboardInterrupt):
        try:
            for update in stream(reader):
                if args.json:
                    print(json.dumps(update), flush=True)
                elif _tiers(update) != shown:
                    print(text_line(update), flush=True)
                shown = _tiers(update)
                if args.max_seconds and update["media_time_s"] >= args.max_seconds:
                    break
        except LiveRouteError as e:
            print(str(e), file=sys.stderr)
            return 2
        finally:
            reader.close()
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    from serving.client.cli import RAW, add_runtime_argument
    from serving.client.detect import DEFAULT_SERVICE, DEFAULT_SERVING_DIR

    command = commands.add_parser("live", help=LIVE_HELP, description=__doc__, formatter_class=RAW)
    command.add_argument("source", help="a camera index (0), a stream URL, or a video file")
    command.add_argument("--local", action="store_true", help="analyse in this process")
    command.add_argument("--service", default=os.environ.get("DEEPFAKE_SERVICE", DEFAULT_SERVICE))
    command.add_argument(
        "--api-key", default=os.environ.get("DEEPFAKE_API_KEY"), help="the service's key (default: $DEEPFAKE_API_KEY)"
    )
    command.add_argument("--model-dir", help="with --local: the model version to use (default: see --serving-dir)")
    command.add_argument("--serving-dir", default=DEFAULT_SERVING_DIR, help="as for detect")
    add_runtime_argument(command)
    command.add_argument("--realtime", action="store_true", help="play a file at its own frame rate, as a stream")
    command.add_argument("--window", type=int, default=8, help="frames each rolling verdict is read over")
    command.add_argument("--sample-fps", type=float, default=5.0, help="frames taken a second of media, at most")
    command.add_argument("--rule", default="mean", help="mean, confident or confidence_weighted")
    command.add_argument("--threshold", type=float, help="override the version's point, as for detect")
    command.add_argument("--real-threshold", type=float, help="override the version's point, as for detect")
    command.add_argument("--max-seconds", type=float, default=0.0, help="stop after this much media time (0: never)")
    command.add_argument("--json", action="store_true", help="one JSON line per update")
    command.set_defaults(run=live)
