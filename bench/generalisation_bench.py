"""Generalisation: an exported model's video AUC on an ingest of videos it never saw.

Calls the model's `serving_default` signature (a batch of encoded face crops
`images` -> `fake_probability`) on every face example of every `Split-*`
folder of an ingest output, scores each person (track) by the mean of its
faces and each video by its most fake person (`evaluation.video_scores`),
then prints the video AUC of all fakes against all reals (with a bootstrap
95 % interval over videos), per manipulation
kind (its fakes against all reals) and per compression level (fakes against
reals at that level), as `evaluation.cross_generator` computes them for the
pipeline, the frame AUC, and how often a fake scores above the real video it
was made from (overall and per kind: the manipulation seen apart from how
evenly the model scores different people). Every kind counts as unseen, as
for a model trained on self-blends of real faces only.

    python bench/generalisation_bench.py --model OUTPUT/serving_models/blend_resnet/<version> \
        --examples /tmp/heldout_ingest [--batch-size 64] [--json results.json]

`--model` is a pushed version folder or a Trainer's `Format-Serving` folder.
Given more than once, each model is reported, then their average (the mean of
their fake probabilities per face): what an ensemble of independently trained
models, for example the same recipe under different seeds, would score.
"""

import collections
import glob
import os
import time
from typing import Dict, List, Tuple

import _common
import numpy as np
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.evaluation import cross_generator, video_scores

# A person's score is the mean of its faces' scores; a video's, its most fake person's.
BENCH = _common.Bench(
    "generalisation_bench",
    "the held-out video AUC, with its interval, that recipe changes are judged by (docs/experiments.md): above chance "
    "on manipulations the model never saw, and fakes above their own originals",
)
RULE = video_scores.RULE_MEAN
# Figures of `cross_generator.paired_rates`: the share of fakes above their own original, and how many pairs.
PAIRED_RATE = "paired_rate"
PAIRS = "pairs"
_FEATURES = {
    contract.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    contract.LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    contract.VIDEO_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    contract.TRACK_ID_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=0),
    contract.MANIPULATION_KEY: tf.io.FixedLenFeature([], tf.string, default_value=contract.UNKNOWN),
    contract.COMPRESSION_KEY: tf.io.FixedLenFeature([], tf.string, default_value=contract.UNKNOWN),
    contract.SOURCE_ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def example_files(examples_dir: str) -> List[str]:
    """Every example file of every split of an ingest output (`examples_dir/Split-*/`)."""
    files = sorted(glob.glob(os.path.join(examples_dir, "Split-*", "*")))
    if not files:
        raise SystemExit(f"No example files under {examples_dir}/Split-*/")
    return files


def score_faces(model_dir: str, files: List[str], batch_size: int) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """The examples' features (without the image) and the model's fake probability for each face."""
    signature = tf.saved_model.load(model_dir).signatures[contract.SERVING_DEFAULT]
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
    columns: Dict[str, list] = collections.defaultdict(list)
    scores = []
    for serialized in records:
        parsed = tf.io.parse_example(serialized, _FEATURES)
        output = signature(**{contract.IMAGES_INPUT: parsed.pop(contract.IMAGE_KEY)})[contract.OUTPUT_KEY]
        scores.append(np.reshape(output.numpy(), [-1]))
        for key, value in parsed.items():
            columns[key].append(value.numpy())
    return {k: np.concatenate(v) for k, v in columns.items()}, np.concatenate(scores)


def video_outcomes(features: Dict[str, np.ndarray], scores: np.ndarray) -> List[cross_generator.VideoOutcome]:
    """One outcome per video: its most fake track, each track scored by the mean of its faces."""
    tracks: Dict[bytes, Dict[int, List[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    meta: Dict[bytes, Tuple[int, str, str, str]] = {}
    for i, video in enumerate(features[contract.VIDEO_ID_KEY]):
        tracks[video][int(features[contract.TRACK_ID_KEY][i])].append(float(scores[i]))
        meta[video] = (
            int(features[contract.LABEL_KEY][i]),
            features[contract.MANIPULATION_KEY][i].decode(),
            features[contract.COMPRESSION_KEY][i].decode(),
            features[contract.SOURCE_ID_KEY][i].decode(),
        )
    return [
        cross_generator.VideoOutcome(label, video_scores.video_score(tracks[video], RULE), kind, level, source)
        for video, (label, kind, level, source) in meta.items()
    ]


def bootstrap_interval(videos: List[cross_generator.VideoOutcome], rounds: int, seed: int = 0) -> Tuple[float, float]:
    """A 95 % interval of the overall video AUC, resampling videos with replacement."""
    scored = [v for v in videos if v.score is not None]
    labels = np.array([v.label != contract.REAL_LABEL for v in scored])
    scores = np.array([v.score for v in scored])
    rng = np.random.default_rng(seed)
    draws = [video_scores.roc_auc(labels[i], scores[i]) for i in rng.integers(0, len(scored), (rounds, len(scored)))]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return float(low), float(high)


def results(features: Dict[str, np.ndarray], scores: np.ndarray, rounds: int = 1000) -> Dict[str, float]:
    """{name: value}: frame AUC, face and video counts, the cross-generator video AUCs with their counts."""
    values = {
        "frame_auc": video_scores.roc_auc(features[contract.LABEL_KEY] != contract.REAL_LABEL, scores),
        "faces": float(scores.size),
    }
    videos = video_outcomes(features, scores)
    values["videos"] = float(len(videos))
    values["video_auc_low"], values["video_auc_high"] = bootstrap_interval(videos, rounds)
    for group in cross_generator.cross_generator_aucs(videos, cross_generator.EVERY_KIND_UNSEEN):
        values.update(group.metrics())
    for paired in cross_generator.paired_rates(videos):
        suffix = "" if paired.manipulation is None else f"/{contract.MANIPULATION_KEY}={paired.manipulation}"
        values[PAIRED_RATE + suffix], values[PAIRS + suffix] = paired.rate, float(paired.pairs)
    return values


def report(values: Dict[str, float]) -> str:
    lines = [f"faces {values['faces']:.0f}, videos {values['videos']:.0f}, frame AUC {values['frame_auc']:.3f}"]
    for name, value in values.items():
        parsed = cross_generator.parse_metric_name(name)
        if parsed is None or parsed.statistic != cross_generator.AUC:
            continue
        fakes = values[cross_generator.metric_name(cross_generator.FAKES, parsed.seen, parsed.feature, parsed.value)]
        reals = values[cross_generator.metric_name(cross_generator.REALS, parsed.seen, parsed.feature, parsed.value)]
        group, interval = f"{parsed.feature}={parsed.value}", ""
        if parsed.feature is None:
            group, interval = "all fakes", f", 95 % {values['video_auc_low']:.3f}-{values['video_auc_high']:.3f}"
        lines.append(f"video AUC {group:<28} {value:.3f}  ({fakes:.0f} fakes vs {reals:.0f} reals{interval})")
    paired = [
        f"{name.partition('=')[2] or 'all'} {value:.2f}"
        for name, value in values.items()
        if name.startswith(PAIRED_RATE)
    ]
    lines.append(f"fake above its own original ({values[PAIRS]:.0f} pairs): {', '.join(paired)}")
    return "\n".join(lines)


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        help="exported SavedModel folder (pushed version or Format-Serving); repeat to also score their average",
    )
    parser.add_argument("--examples", required=True, help="ingest output folder holding Split-*/ example files")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the overall AUC's interval")
    args = BENCH.parse_args(parser)
    files = example_files(args.examples)
    figures, member_scores = [], []
    for model in args.model:
        start = time.perf_counter()
        features, scores = score_faces(model, files, args.batch_size)
        member_scores.append(scores)
        figures.append({"model": model, **results(features, scores, args.bootstrap)})
        print(f"model {model}\nscored in {time.perf_counter() - start:.0f}s\n{report(figures[-1])}\n")
    if len(args.model) > 1:
        figures.append({"model": "average", **results(features, np.mean(member_scores, axis=0), args.bootstrap)})
        print(f"average of the {len(args.model)} models' fake probabilities\n{report(figures[-1])}")
    BENCH.write(args, {"models": figures})


if __name__ == "__main__":
    main()
