"""Ingest benchmark: this component's ingest against the design document's naive loop, side by side.

Both ingest the same generated videos and detect faces on the same sampled
frames, each in its own process so peak memory is measured separately:

- component: one sequential pass (`grab()` every frame, `retrieve()` only the
  sampled ones), one MTCNN detector reused, all sampled frames of a video in
  one batch (`components.video_example_gen.ingest.ingest_video`);
- baseline: `read()` (decode and convert) every frame, and a new MTCNN detector
  for every sampled frame, as the design document's code does.

    python bench/ingest_bench.py [--videos 6] [--height 540] [--seconds 4]
"""

import argparse
import multiprocessing
import os
import resource
import tempfile
import time

from components.video_example_gen.ingest_config import IngestConfig
from pipeline import sample_data


def run_component(paths, frames_per_video, queue, detection_batch_size=8):
    from components.video_example_gen.faces import FaceDetector
    from components.video_example_gen.ingest import ingest_video
    from components.video_example_gen.readers import VideoRecord

    ingest_config = IngestConfig(frames_per_video=frames_per_video, detection_batch_size=detection_batch_size)
    started = time.perf_counter()
    detector = FaceDetector(ingest_config.min_detection_confidence, ingest_config.detection_batch_size)
    frames = faces = 0
    for path in paths:
        record = VideoRecord(path, os.path.basename(path), 0, "bench", "original", path)
        report = ingest_video(record, detector, ingest_config).report
        frames += report["frames_sampled"]
        faces += report["faces"]
    queue.put(_result(started, len(paths), frames, faces))


def run_baseline(paths, frames_per_video, queue):
    import cv2
    from mtcnn import MTCNN

    from components.video_example_gen.faces import Detection, build_tracks, crop_face, keep_tracks
    from components.video_example_gen.sampling import plan_frame_indices

    ingest_config = IngestConfig(frames_per_video=frames_per_video)
    started = time.perf_counter()
    frames = faces = 0
    for path in paths:
        capture = cv2.VideoCapture(path)
        fps = capture.get(cv2.CAP_PROP_FPS)
        all_frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            all_frames.append(frame)
        capture.release()
        by_frame = []
        for index in plan_frame_indices("uniform", frames_per_video, len(all_frames), fps):
            frames += 1
            detector = MTCNN()
            found = detector.detect_faces(cv2.cvtColor(all_frames[index], cv2.COLOR_BGR2RGB))
            confident = [f for f in found if f["confidence"] >= 0.9]
            by_frame.append([Detection(index, tuple(f["box"]), f["confidence"]) for f in confident])
        tracks = build_tracks(by_frame, ingest_config.track_iou)
        min_faces = min(ingest_config.min_track_faces, len(by_frame))
        for track in keep_tracks(tracks, ingest_config.min_confidence_multi, min_faces):
            for detection in track.detections:
                image = all_frames[detection.frame_index]
                cv2.imencode(".png", crop_face(image, detection.box, 0.3, ingest_config.image_size))
                faces += 1
    queue.put(_result(started, len(paths), frames, faces))


def _result(started, videos, frames, faces):
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "videos": videos, "frames": frames, "faces": faces, "peak_mib": peak_mib}


def measure(target, paths, frames_per_video, *extra):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(paths, frames_per_video, queue, *extra))
    process.start()
    result = queue.get()
    process.join()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--frames-per-video", type=int, default=32)
    parser.add_argument("--detection-batch-size", type=int, default=8, help="frames per MTCNN call")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        frame_size = (args.height * 4 // 3, args.height)
        part = sample_data.generate(tmp, args.videos, seed=0, seconds=args.seconds, frame_size=frame_size)
        paths = sorted(os.path.join(part, n) for n in os.listdir(part) if n.endswith(".mp4"))
        print(
            f"{len(paths)} videos, {frame_size[0]}x{frame_size[1]}, {args.seconds:.0f}s at {sample_data.FPS} fps, "
            f"{args.frames_per_video} sampled frames per video, MTCNN batches of {args.detection_batch_size}"
        )
        results = {}
        results["component"] = measure(run_component, paths, args.frames_per_video, args.detection_batch_size)
        results["baseline"] = measure(run_baseline, paths, args.frames_per_video)

    print(f"{'method':<10} {'seconds':>8} {'videos/s':>9} {'frames/s':>9} {'faces/s':>8} {'faces':>6} {'peak MiB':>9}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['seconds']:8.1f} {r['videos'] / r['seconds']:9.3f} {r['frames'] / r['seconds']:9.2f} "
            f"{r['faces'] / r['seconds']:8.2f} {r['faces']:6d} {r['peak_mib']:9.0f}"
        )
    ratio = results["baseline"]["seconds"] / results["component"]["seconds"]
    print(f"speed ratio (baseline time / component time): {ratio:.2f}x")


if __name__ == "__main__":
    main()
