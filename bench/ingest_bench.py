"""Ingest benchmark: `pipeline_runner.py ingest` against the DFDC winner's recipe, whole process, alternating.

The peer is what a user would pick instead: the face extraction of the DFDC
winner (Seferbekov, 2020), written here from its public description: 32 frames
spread evenly over the video read in one `grab()`/`retrieve()` pass, frames
halved in size, one MTCNN detector reused, all frames of a video in one
detector call, thresholds 0.85/0.95/0.95, crops with a third of the box added
on each side, saved as PNG.

Both run as whole processes (imports, start-up and output included) on the
same videos, in alternating pairs. The bench prints, for each: wall time,
cpu time / wall time, frames/s, faces/s, faces found, crop agreement and peak
memory (largest process of its tree), and the speed ratio. Faces found and
crop agreement are against the reference: MTCNN on every sampled frame at the
design's width-based scale, with the ingest's keep rule; crop agreement is the
mean IoU of each reference face's margin crop box with the method's box in the
same frame (0 when the method missed the face).

The videos are 10 s at 30 fps, one of each: 720p H.264, 360p VP9, 540p HEVC,
a two-person 720p H.264 and a 540p face swap.

    python bench/ingest_bench.py [--pairs 3] [--videos-dir DIR] [--copies N] [-- extra ingest flags]
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import _common
import numpy as np

from deepfake_detection.ingest.ingest_config import IngestConfig

BENCH = _common.Bench(
    "ingest_bench",
    "the standalone ingest faster than the DFDC winner's face extraction (ratio over 1) with at least its faces",
)

# name, people (indices into the portraits), frame size, codec, container, manipulation
BENCH_VIDEOS = (
    ("h264_720p", [0], (1280, 720), "h264", "mp4", None),
    ("vp9_360p", [3], (640, 360), "vp9", "webm", None),
    ("hevc_540p", [6], (960, 540), "hevc", "mp4", None),
    ("two_people_720p", [1, 2], (1280, 720), "h264", "mp4", None),
    ("face_swap_540p", [4], (960, 540), "h264", "mp4", "face_swap"),
)
BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel")
SECONDS, FPS = 10.0, 30
FRAMES_PER_VIDEO = 32


def make_videos(folder: str) -> None:
    """Writes the bench videos as one DFDC part (metadata.json beside them), unless already there."""
    from deepfake_detection import sample_data, sample_swaps

    if os.path.isfile(os.path.join(folder, "metadata.json")):
        return
    os.makedirs(folder, exist_ok=True)
    faces = sample_data.load_faces()
    portraits = [n for n, face in enumerate(faces) if face.portrait]
    rng = np.random.default_rng(0)
    metadata = {}
    for number, (name, people, size, codec, container, manipulation) in enumerate(BENCH_VIDEOS):
        background = sample_data.load_background(BACKGROUNDS[number])
        people_faces = [portraits[p] for p in people]
        scene = sample_data.make_scene(faces, people_faces, background, int(SECONDS * FPS), size, 7 + number)
        frames = scene.film()
        if manipulation:
            donor = faces[portraits[(people[0] + 5) % len(portraits)]]
            swap = sample_swaps.draw_swap(manipulation, [donor], rng)
            frames = [sample_swaps.manipulate(f, scene.landmarks_at(t), swap) for t, f in enumerate(frames)]
        file_name = f"{name}.{container}"
        sample_data.write_video(os.path.join(folder, file_name), frames, 23, fps=FPS, codec=codec)
        metadata[file_name] = {"label": "FAKE" if manipulation else "REAL", "split": "train", "original": None}
        print(f"  wrote {file_name}", flush=True)
    with open(os.path.join(folder, "metadata.json"), "w") as f:
        json.dump(metadata, f, indent=1)


def copied(folder: str, target: str, copies: int) -> str:
    """A DFDC part holding each video `copies` times under new names (hard links or copies)."""
    os.makedirs(target)
    with open(os.path.join(folder, "metadata.json")) as f:
        metadata = json.load(f)
    copied_metadata = {}
    for name, entry in metadata.items():
        stem, extension = os.path.splitext(name)
        for number in range(copies):
            shutil.copyfile(os.path.join(folder, name), os.path.join(target, f"{stem}_{number}{extension}"))
            copied_metadata[f"{stem}_{number}{extension}"] = entry
    with open(os.path.join(target, "metadata.json"), "w") as f:
        json.dump(copied_metadata, f, indent=1)
    return target


def winner_recipe(folder: str, output: str) -> None:
    """The DFDC winner's face extraction (the peer), run as its own process by `--winner`."""
    import cv2
    from mtcnn import MTCNN

    detector = MTCNN(device="CPU:0")
    boxes = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.*"))):
        if path.endswith(".json"):
            continue
        capture = cv2.VideoCapture(path)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = set(np.round(np.linspace(0, count - 1, FRAMES_PER_VIDEO)).astype(int).tolist())
        frames, indices = [], []
        for index in range(count):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    frames.append(frame)
                    indices.append(index)
        capture.release()
        half = [cv2.cvtColor(cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2)), cv2.COLOR_BGR2RGB) for f in frames]
        found = detector.detect_faces(half, threshold_pnet=0.85, threshold_rnet=0.95, threshold_onet=0.95)
        name = os.path.basename(path)
        for frame, index, faces in zip(frames, indices, found, strict=True):
            for number, face in enumerate(faces):
                x, y, w, h = (2 * v for v in face["box"])
                pad_w, pad_h = w // 3, h // 3
                crop = frame[max(0, y - pad_h) : y + h + pad_h, max(0, x - pad_w) : x + w + pad_w]
                cv2.imwrite(os.path.join(output, f"{name}_{index}_{number}.png"), crop)
                boxes.setdefault(name, {}).setdefault(str(index), []).append([x, y, w, h])
    with open(os.path.join(output, "boxes.json"), "w") as f:
        json.dump(boxes, f)


def run_process(command: list) -> dict:
    """Runs a command to its end; wall time, cpu time and peak memory of its largest process.

    The command starts from a small launcher (this script's `--measure`), not
    from this process: Linux carries a process's peak memory across exec, so
    a child started from the bench would count the bench's own pages (the
    bench videos it made, then TensorFlow) as its peak.
    """
    with tempfile.TemporaryDirectory() as work:
        result = os.path.join(work, "usage.json")
        launcher = [sys.executable, os.path.abspath(__file__), "--measure", result, *command]
        process = subprocess.run(launcher, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=_common.ROOT)
        if process.returncode != 0:
            raise RuntimeError(f"{command[:3]} failed: {process.stderr.decode()[-2000:]}")
        with open(result) as f:
            return json.load(f)


def measure(result_path: str, command: list) -> None:
    """The launcher: runs `command`, writes its wall time, cpu time and largest process's peak, exits as it did."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=_common.ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    with open(result_path, "w") as f:
        json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}, f)
    sys.exit(os.waitstatus_to_exitcode(status))


def ingest_boxes(output: str) -> dict:
    """{video file: {frame index: [boxes]}} from the ingest's face examples."""
    import tensorflow as tf

    from deepfake_detection import contract

    boxes: dict = {}
    files = glob.glob(os.path.join(output, "Split-*", "*.gz"))
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        feature = example.features.feature
        video = feature[contract.VIDEO_ID_KEY].bytes_list.value[0].decode()
        frame = str(feature[contract.FRAME_INDEX_KEY].int64_list.value[0])
        boxes.setdefault(video, {}).setdefault(frame, []).append(list(feature[contract.FACE_BOX_KEY].int64_list.value))
    return boxes


def reference_boxes(folder: str) -> dict:
    """Every sampled frame detected in full at the width-based scale, then the keep rule: the yardstick."""
    from deepfake_detection.ingest.detector import FaceDetector
    from deepfake_detection.ingest.sampling import sample_frames
    from deepfake_detection.ingest.videos import detect_faces

    ingest_config = IngestConfig(detect_every=1, detection_face_px=0)
    detector = FaceDetector.from_config(ingest_config)
    boxes: dict = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.*"))):
        if path.endswith(".json"):
            continue
        _, frames = sample_frames(path, ingest_config)
        by_frame: dict = {}
        for track in detect_faces(frames, detector, ingest_config).tracks:
            for d in track.detections:
                by_frame.setdefault(str(d.frame_index), []).append(list(d.box))
        boxes[os.path.basename(path)] = {"size": frames[0].image.shape[1::-1], "frames": by_frame}
    return boxes


def agreement(reference: dict, found: dict, margin: float) -> tuple:
    """(faces found, reference faces, mean crop-box IoU over the reference faces)."""
    from deepfake_detection.ingest.faces import iou, margin_crop_box

    overlaps, count = [], 0
    for video, expected in reference.items():
        width, height = expected["size"]
        by_frame = found.get(_video_key(video, found), {})
        count += sum(len(v) for v in by_frame.values())
        for frame, boxes in expected["frames"].items():
            theirs = [margin_crop_box(tuple(b), width, height, margin) for b in by_frame.get(frame, [])]
            for box in boxes:
                mine = margin_crop_box(tuple(box), width, height, margin)
                overlaps.append(max([iou(mine, other) for other in theirs] or [0.0]))
    return count, len(overlaps), float(np.mean(overlaps))


def _video_key(file_name: str, found: dict) -> str:
    """The winner names videos by file name, the ingest by dataset and path (`dfdc/<file name>`)."""
    return file_name if file_name in found else f"dfdc/{file_name}"


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:  # the launcher of `run_process`: the command's own flags follow, unparsed
        measure(sys.argv[2], sys.argv[3:])
    parser = BENCH.parser(__doc__)
    parser.add_argument("--pairs", type=int, default=3, help="alternating runs of each method")
    parser.add_argument("--videos-dir", help="where the bench videos are (made there when missing)")
    parser.add_argument(
        "--copies", type=int, default=1, help="ingest each video this many times (start-up costs amortised)"
    )
    parser.add_argument("--winner", nargs=2, metavar=("VIDEOS", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("ingest_flags", nargs="*", help="extra flags for pipeline_runner.py ingest")
    if "--winner" in sys.argv[1:]:  # the peer's own process, started by this bench: no goal, no figures
        args = parser.parse_args()
        winner_recipe(*args.winner)
        return
    args = BENCH.parse_args(parser)
    with tempfile.TemporaryDirectory() as work:
        folder = args.videos_dir or os.path.join(work, "videos")
        print(f"Bench videos in {folder}:", flush=True)
        make_videos(folder)
        if args.copies > 1:
            folder = copied(folder, os.path.join(work, "copies"), args.copies)
        runs = {"ingest": [], "winner": []}
        outputs = {}
        for pair in range(args.pairs):
            for name in ("ingest", "winner") if pair % 2 == 0 else ("winner", "ingest"):
                output = outputs[name] = os.path.join(work, f"{name}_{pair}")
                os.makedirs(output)
                if name == "ingest":
                    command = [sys.executable, "pipeline_runner.py", "ingest", "--data-root", folder]
                    command += ["--output-dir", output]
                    command += args.ingest_flags
                else:
                    command = [sys.executable, os.path.abspath(__file__), "--winner", folder, output]
                runs[name].append(run_process(command))
                print(f"  pair {pair + 1} {name}: {runs[name][-1]['wall']:.1f} s", flush=True)
        with open(os.path.join(outputs["winner"], "boxes.json")) as f:
            found = {"ingest": ingest_boxes(outputs["ingest"]), "winner": json.load(f)}
        BENCH.write(args, report(runs, found, reference_boxes(folder)))


def report(runs: dict, found: dict, reference: dict) -> dict:
    """Prints and returns each method's medians, faces and crop agreement, and the speed ratio."""
    frames = FRAMES_PER_VIDEO * len(reference)
    margin = IngestConfig().margin
    print(f"{len(reference)} videos, {frames} sampled frames; median of {len(runs['ingest'])} alternating runs")
    print(
        f"{'method':<8} {'wall s':>7} {'cpu/wall':>8} {'frames/s':>9} {'faces/s':>8} {'faces':>11} "
        f"{'crop IoU':>8} {'peak MiB':>9}"
    )
    walls, figures = {}, {}
    for name, rows in runs.items():
        wall = walls[name] = float(np.median([r["wall"] for r in rows]))
        cpu = float(np.median([r["cpu"] / r["wall"] for r in rows]))
        peak = max(r["peak_mib"] for r in rows)
        count, expected, overlap = agreement(reference, found[name], margin)
        print(
            f"{name:<8} {wall:7.2f} {cpu:8.2f} {frames / wall:9.1f} {count / wall:8.1f} "
            f"{f'{count}/{expected}':>11} {overlap:8.3f} {peak:9.0f}"
        )
        figures[name] = {
            "wall_s": wall,
            "cpu_over_wall": cpu,
            "frames_s": frames / wall,
            "faces_s": count / wall,
            "faces": count,
            "expected_faces": expected,
            "crop_iou": overlap,
            "peak_mib": peak,
        }
    figures["speed_ratio"] = walls["winner"] / walls["ingest"]
    print(f"speed ratio (winner wall / ingest wall): {figures['speed_ratio']:.2f}x")
    return figures


if __name__ == "__main__":
    main()
