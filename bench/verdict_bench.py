"""Verdicts a person can trust: false alarms, fakes caught, uncertain share and calibration on held-out videos.

Goal: real videos answered "fake" at most 2 % (the fitted budget is 1 %),
with as many fakes caught as the separation allows.

Runs exactly what `deepfake-pipeline detect --local --model-dir MODEL` runs
(the command line's local analyser, its defaults: the person rule and the
operating point the model version carries) over folders of labelled videos
(a DFDC `metadata.json` per folder, as `sample_data` writes), and prints per
folder and overall: reals accused, fakes caught, the uncertain share, with
95 % intervals, and the expected calibration error of the raw and the
calibrated video scores. Beside it, the baseline it replaces: `fake` at a
fixed raw score of 0.5 (the old default), on the same faces. Every sample
video shows a person, so each one that ends `no_face` or `no_person` is a
person the service told nothing about (goal: none); the videos `uncertain`
on thin evidence (a face seen in few frames or unsurely) and the seconds
spent detecting faces are counted beside them. With `--second-look-cost`,
the face detector's second look for faces seen in few frames is timed
against the same detector without it, in CPU seconds on the same frames.

    python bench/verdict_bench.py --model-dir OUTPUT/serving_models/blend_resnet/<version> \\
        --videos /tmp/heldout11 /tmp/heldout12 [--json outputs/bench/verdict_bench.json]
"""

import os
import time
from typing import Dict, List

import _common

from deepfake_detection.evaluation import operating_point
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.sampling import sample_frames
from deepfake_detection.models import export
from serving.client.detect import local_analyser

FIXED_THRESHOLD = 0.5
BENCH = _common.Bench(
    "verdict_bench",
    "real videos answered fake at most 2 % (the fitted budget is 1 %), as many fakes caught as the separation allows",
)


def analyse_folder(analyse, folder: str) -> List[dict]:  # noqa: ANN001 - the command line's analyser
    """One row per video: label, kind, verdict, raw and calibrated scores, and tracks that did not decide."""
    rows = []
    for record in sorted(read_dataset(folder), key=lambda r: r.path):
        status, answer = analyse(record.path)
        rows.append(
            {
                "video": os.path.basename(record.path),
                "label": record.label,
                "manipulation": record.manipulation,
                "status": status,
                "verdict": answer.get("verdict"),
                "raw_score": answer.get("raw_score"),
                "fake_probability": answer.get("fake_probability"),
                "other_tracks": len(answer.get("other_tracks") or []),
                "thin_evidence": "evidence is thin" in answer.get("explanation", ""),
                "detection_s": answer.get("timings_s", {}).get("detection", 0.0),
            }
        )
    return rows


def summary(rows: List[dict]) -> Dict[str, dict]:
    """Rates at the fitted point and at the fixed 0.5, over the videos that were scored."""
    scored = [r for r in rows if r["raw_score"] is not None]
    reals = [r for r in scored if r["label"] == 0]
    fakes = [r for r in scored if r["label"] == 1]

    def rate(items: List[dict], hit) -> dict:  # noqa: ANN001 - a predicate on a row
        count = sum(1 for r in items if hit(r))
        low, high = operating_point.wilson_interval(count, len(items))
        return {"count": count, "of": len(items), "ci95": [round(low, 3), round(high, 3)]}

    labels = [r["label"] for r in scored]
    return {
        "fitted": {
            "reals_accused": rate(reals, lambda r: r["verdict"] == "fake"),
            "fakes_caught": rate(fakes, lambda r: r["verdict"] == "fake"),
            "uncertain": rate(scored, lambda r: r["verdict"] == "uncertain"),
            "reals_cleared": rate(reals, lambda r: r["verdict"] == "real"),
            "ece": operating_point.expected_calibration_error([r["fake_probability"] for r in scored], labels),
        },
        "fixed_0.5": {
            "reals_accused": rate(reals, lambda r: r["raw_score"] >= FIXED_THRESHOLD),
            "fakes_caught": rate(fakes, lambda r: r["raw_score"] >= FIXED_THRESHOLD),
            "ece": operating_point.expected_calibration_error([r["raw_score"] for r in scored], labels),
        },
        "no_face": sum(1 for r in rows if r["verdict"] == "no_face"),
        "no_person": sum(1 for r in rows if r["verdict"] == "no_person"),
        "thin_evidence": sum(1 for r in rows if r["thin_evidence"]),
        "detection_s": round(sum(r["detection_s"] for r in rows), 2),
        "videos_with_tracks_not_counted": sum(1 for r in rows if r["other_tracks"]),
        "videos": len(rows),
    }


def _line(name: str, figures: Dict[str, dict]) -> str:
    fitted, fixed = figures["fitted"], figures["fixed_0.5"]

    def show(r: dict) -> str:
        return f"{r['count']}/{r['of']} ({r['ci95'][0]:.0%}-{r['ci95'][1]:.0%})"

    return (
        f"{name:<14} fitted: reals accused {show(fitted['reals_accused'])}, fakes caught "
        f"{show(fitted['fakes_caught'])}, uncertain {show(fitted['uncertain'])}, ECE {fitted['ece']:.3f} | "
        f"fixed 0.5: reals accused {show(fixed['reals_accused'])}, fakes caught {show(fixed['fakes_caught'])}, "
        f"ECE {fixed['ece']:.3f} | no face {figures['no_face']}, no person {figures['no_person']}, uncertain on "
        f"thin evidence {figures['thin_evidence']}, tracks not counted in {figures['videos_with_tracks_not_counted']} "
        f"of {figures['videos']} videos, detection {figures['detection_s']:.0f} s"
    )


def second_look_cost(folders: List[str]) -> dict:
    """CPU seconds of face detection with and without the second look, on the same sampled frames; squares."""
    ingest_config = IngestConfig()
    with_it, without = FaceDetector.from_config(ingest_config), FaceDetector.from_config(ingest_config, 0)
    seconds, squares, looked = {"with": 0.0, "without": 0.0}, [], 0
    for folder in folders:
        for record in sorted(read_dataset(folder), key=lambda r: r.path):
            _, frames = sample_frames(record.path, ingest_config)
            images, indices = [f.image for f in frames], [f.index for f in frames]
            for name, detector in (("without", without), ("with", with_it)):
                started = time.process_time()
                detector.detect(images, indices)
                seconds[name] += time.process_time() - started
            squares.append(with_it.last_recall[0])
            looked += with_it.last_recall[1]
    return {
        "cpu_s_without": round(seconds["without"], 2),
        "cpu_s_with": round(seconds["with"], 2),
        "ratio": round(seconds["with"] / max(seconds["without"], 1e-9), 3),
        "videos_looked_at_again": sum(1 for n in squares if n),
        "squares_mean": round(sum(squares) / max(1, len(squares)), 2),
        "squares_max": max(squares, default=0),
        "faces_found_again": looked,
    }


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--model-dir", required=True, help="a pushed version folder (a SavedModel)")
    parser.add_argument("--videos", nargs="+", required=True, help="folders of labelled videos")
    parser.add_argument(
        "--second-look-cost", action="store_true", help="also time face detection with and without the second look"
    )
    args = BENCH.parse_args(parser)
    analyse = local_analyser(args.model_dir, {})
    fitted = export.read_operating_point(args.model_dir)
    print(f"Operating point of {args.model_dir}: {fitted}")
    results, every = {}, []
    started = time.perf_counter()
    for folder in args.videos:
        rows = analyse_folder(analyse, folder)
        every += rows
        results[folder] = summary(rows)
        print(_line(os.path.basename(folder.rstrip("/")), results[folder]), flush=True)
    results["overall"] = summary(every)
    print(_line("overall", results["overall"]))
    print(f"{len(every)} videos in {time.perf_counter() - started:.0f} s")
    if args.second_look_cost:
        results["second_look"] = cost = second_look_cost(args.videos)
        print(
            f"second look: {cost['videos_looked_at_again']} of {len(every)} videos, {cost['squares_mean']} squares a "
            f"video (at most {cost['squares_max']}), {cost['faces_found_again']} faces found again; detection CPU "
            f"{cost['cpu_s_with']} s with it, {cost['cpu_s_without']} s without ({cost['ratio']:.2f}x)"
        )
    BENCH.write(args, {"operating_point": fitted, "results": results, "rows": every})


if __name__ == "__main__":
    main()
