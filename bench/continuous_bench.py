"""Continuous-training benchmark: spans of new videos into the pipeline's data half, against re-reading all.

Three spans of generated videos arrive one after the other: span 1, span 2
(new identities, drawn the same way) and span 3 (new identities again, then
made darker, smaller and more compressed, as if a new source sent them). The
pipeline's data half (VideoExampleGen, statistics, schema validation, drift,
the gate; no training) runs once per arrival on LocalDagRunner with the cache
on, reading `span-{SPAN}` folders. The peer is what a user of the pipeline did
before spans: one folder that grows, whose every video the ingest decodes
again when anything in it changed.

It prints, per run: videos decoded and the ingest's own time (its execution in
ML Metadata) for spans and for the peer, and their ratio on runs 2 and 3 (goal:
the ingest of a run costs what its new videos cost, so about the span's share
of the folder); and the drift line of each run (goal: span 3 flagged, span 2
not). `--probe` reruns the drift check with every threshold near zero and
prints each feature's distance, to choose the thresholds in
schemas/drift_config.pbtxt. Warm against fresh starts over spans is
bench/warm_start_bench.py's.

    python bench/continuous_bench.py [--videos-per-span 8] [--seconds 1.0] [--probe]
"""

import json
import os
import shutil
import tempfile
import time
from typing import Dict, List

import _common

BENCH = _common.Bench(
    "continuous_bench",
    "run 2's and 3's ingest cost about their new videos' share of the folder (the peer decodes them all again); "
    "drift flagged on the drifted span 3 only",
)
SPAN_PATTERN = "span-{SPAN}"


def make_spans(root: str, videos_per_span: int, seconds: float) -> List[str]:
    """span-1, span-2 (new identities) and span-3 (new identities, darker, smaller, more compressed)."""
    from deepfake_detection import sample_data

    folders = [os.path.join(root, f"span-{span}") for span in (1, 2, 3)]
    for span, folder in enumerate(folders[:2], start=1):
        sample_data.generate(folder, videos_per_span, seed=span, seconds=seconds)
    normal = os.path.join(root, "span-3-before-drift")
    sample_data.generate(normal, videos_per_span, seed=3, seconds=seconds)
    sample_data.drifted_copy(normal, folders[2])
    shutil.rmtree(normal)
    return folders


def grow_flat_folder(flat: str, span_folder: str, span: int) -> None:
    """The peer's data root: one DFDC part per delivered span, all in one folder."""
    from deepfake_detection import sample_data

    shutil.copytree(
        os.path.join(span_folder, sample_data.PART_NAME), os.path.join(flat, f"{sample_data.PART_NAME}_{span}")
    )


def data_pipeline(work: str, data_root: str, span_pattern: str, drift_config):  # noqa: ANN001, ANN201
    """The pipeline's data half (no backbone), its metadata in `work`."""
    from tfx import v1 as tfx

    from pipeline.pipeline import PipelineSettings, create_pipeline
    from pipeline.runners import beam_presets
    from schemas import FACE_SCHEMA_PATH

    return create_pipeline(
        pipeline_name="continuous-bench",
        pipeline_root=os.path.join(work, "pipeline_root"),
        data_root=data_root,
        schema_path=FACE_SCHEMA_PATH,
        settings=PipelineSettings(span_pattern=span_pattern, drift_config=drift_config),
        beam_pipeline_args=beam_presets.beam_args("direct", 1),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(work, "metadata.sqlite")
        ),
    )


def ingest_figures(work: str) -> Dict[str, float]:
    """The latest ingest's videos decoded, their decoding time (the ingest report's seconds per video) and the
    ingest's own time (its execution in ML Metadata: Beam's start-up included); nothing when it was cached."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    from components.video_example_gen.component import VideoExampleGen
    from deepfake_detection import contract

    store = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(os.path.join(work, "metadata.sqlite"))
    )
    execution = max(store.get_executions_by_type(VideoExampleGen.get_class_type()), key=lambda e: e.id)
    if execution.last_known_state == metadata_store_pb2.Execution.CACHED:
        return {"videos": 0, "decode_s": 0.0, "ingest_s": 0.0}
    seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    events = store.get_events_by_execution_ids([execution.id])
    outputs = store.get_artifacts_by_id([e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT])
    report = next(a for a in outputs if "ok" in a.custom_properties)
    with open(os.path.join(report.uri, contract.REPORT_FILE_NAME)) as f:
        rows = [json.loads(line) for line in f]
    return {"videos": len(rows), "decode_s": sum(row.get("seconds", 0.0) for row in rows), "ingest_s": seconds}


def run_once(work: str, data_root: str, span_pattern: str, drift_config) -> Dict[str, object]:  # noqa: ANN001
    from tfx import v1 as tfx

    from components.anomaly_gate.gate import drift_line
    from pipeline.runners.local import latest_drift

    started = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(data_pipeline(work, data_root, span_pattern, drift_config))
    figures: Dict[str, object] = {**ingest_figures(work), "run_s": time.monotonic() - started}
    drift = latest_drift(os.path.join(work, "pipeline_root")) if drift_config else None
    figures["drift"], figures["drifted"] = drift_line(drift), drift
    return figures


def probe_config():  # noqa: ANN201 - a DistributionValidatorConfig
    """schemas/drift_config.pbtxt with every threshold near zero: every feature's distance is reported."""
    from pipeline.runners import flags

    config = flags.drift_config()
    for feature in config.default_slice_config.feature:
        comparator = feature.distribution_comparator
        for kind in ("jensen_shannon_divergence", "infinity_norm"):
            if comparator.HasField(kind):
                getattr(comparator, kind).threshold = 1e-6
    return config


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--videos-per-span", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each video")
    parser.add_argument("--probe", action="store_true", help="report every feature's drift distance")
    args = BENCH.parse_args(parser)
    from pipeline.runners import flags

    drift_config = probe_config() if args.probe else flags.drift_config()
    with tempfile.TemporaryDirectory() as work:
        spans_root, flat = os.path.join(work, "spans"), os.path.join(work, "flat")
        os.makedirs(spans_root)
        print(f"Generating 3 spans of {args.videos_per_span} videos", flush=True)
        folders = make_spans(os.path.join(work, "made"), args.videos_per_span, args.seconds)
        runs: List[dict] = []
        for span, folder in enumerate(folders, start=1):
            shutil.copytree(folder, os.path.join(spans_root, f"span-{span}"))
            grow_flat_folder(flat, folder, span)
            spans = run_once(os.path.join(work, "spans_run"), spans_root, SPAN_PATTERN, drift_config)
            peer = run_once(os.path.join(work, "flat_run"), flat, "", None)
            runs.append({"span": span, "spans": spans, "peer": peer})
            print(
                f"run {span}: spans {spans['videos']} videos decoded, ingest {spans['ingest_s']:.1f} s | peer "
                f"{peer['videos']} videos, {peer['ingest_s']:.1f} s\n  {spans['drift']}",
                flush=True,
            )
        figures = report(runs)
    BENCH.write(args, figures)


def report(runs: List[dict]) -> dict:
    """Per run: videos decoded, decoding and ingest time of spans over the peer's; which spans drift flagged."""
    print(
        f"{'run':>3} {'videos':>13} {'decode s':>13} {'ingest s':>13} {'decode ratio':>12} {'ingest ratio':>12}"
        "   (spans | peer)"
    )
    rows = []
    for run in runs:
        spans, peer = run["spans"], run["peer"]
        ratios = {key: spans[key] / peer[key] if peer[key] else None for key in ("decode_s", "ingest_s")}
        print(
            f"{run['span']:>3} {spans['videos']:>6} | {peer['videos']:<4} {spans['decode_s']:6.1f} | "
            f"{peer['decode_s']:<5.1f}{spans['ingest_s']:6.1f} | {peer['ingest_s']:<5.1f}"
            f"{ratios['decode_s']:12.2f} {ratios['ingest_s']:12.2f}"
        )
        rows.append({**run, "decode_ratio": ratios["decode_s"], "ingest_ratio": ratios["ingest_s"]})
    flagged = [run["span"] for run in runs if (run["spans"]["drifted"] or {}).get("features")]
    print(f"Spans flagged for drift: {flagged or 'none'}")
    return {"runs": rows, "flagged_spans": flagged}


if __name__ == "__main__":
    main()
