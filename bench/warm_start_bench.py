"""Warm start against a fresh start: epochs and wall time a Trainer needs to reach the fresh model's eval AUC.

Continuous training retrains each backbone on a window of spans every run. The
peer a user would pick instead is what TFX does without a `base_model`: train
from random weights every run. Here, on generated sample videos
(`deepfake_detection.sample_data`, two spans drawn from different seeds, so
span 2 brings new identities), ingested by the pipeline's own per-video
ingest, for each seed:
- base: a fresh model trained on span 1 alone, the blessed model the previous
  run left behind;
- fresh: a fresh model trained on the window (spans 1 and 2);
- warm: the same model started from the base's weights
  (`models.warm_start.start_from`, as `run_fn` does) and trained on the window.
All three use the Trainer's recipe (`build_and_compile`, `callbacks`: the
moving average of the weights, early stopping and learning-rate halving) on
the same batches; fresh and warm train up to `--epochs` epochs, warm without
early stopping so that its whole curve is seen. The fresh model's eval AUC is
its best epoch's (the weights the Trainer keeps); the figures are the epochs
and the wall time (training and validation, the warm start's loading
included) each needs to first reach that AUC, and their ratio, warm over
fresh (goal: at most a third). A warm run that never reaches it within
`--epochs` counts as not reached.

    python bench/warm_start_bench.py [--videos 48] [--epochs 12] [--seeds 0,1,2] [--backbone compact_cnn]
"""

import os
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import _common
import keras
import numpy as np

from deepfake_detection import contract, defaults, sample_data
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.standalone import ingest_folder
from deepfake_detection.models import data, export, warm_start
from deepfake_detection.models.training import TrainingConfig, build_and_compile, callbacks

BENCH = _common.Bench(
    "warm_start_bench",
    "a warm start reaches the fresh model's eval AUC in at most a third of the fresh start's epochs and wall time",
)


class Curve(keras.callbacks.Callback):
    """Validation AUC and wall time since `started` after every epoch; given a `target`, training stops at the
    first epoch that reaches it."""

    def __init__(self, started: float, target: Optional[float] = None):
        super().__init__()
        self.started, self.target, self.aucs, self.seconds = started, target, [], []

    def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
        self.aucs.append(float(logs["val_auc"]))
        self.seconds.append(time.perf_counter() - self.started)
        if self.target is not None and self.reach(self.target):
            self.model.stop_training = True

    def reach(self, target: float) -> Optional[int]:
        """The first epoch (from 1) whose validation AUC reaches `target`, None if none does."""
        return next((epoch + 1 for epoch, auc in enumerate(self.aucs) if auc >= target - 1e-9), None)


def ingest_spans(work: str, videos: int, frames: int) -> Dict[int, str]:
    """Generates and ingests span 1 (seed 0) and span 2 (seed 1, other people); {span: its examples folder}."""
    ingest_config = IngestConfig(frames_per_video=frames, split_buckets=dict(defaults.LOCAL_SPLIT_BUCKETS))
    folders = {}
    for span in (1, 2):
        videos_dir = os.path.join(work, f"span-{span}")
        sample_data.generate(videos_dir, videos, seed=span - 1, seconds=1.0)
        folders[span] = os.path.join(work, f"examples-{span}")
        counts = ingest_folder(read_dataset(videos_dir), ingest_config, folders[span], workers=2)
        print(f"span {span}: {videos} videos ingested: {counts}", flush=True)
    return folders


def split_files(folders: List[str], split: str) -> List[str]:
    return [os.path.join(folder, f"Split-{split}", "*") for folder in folders]


def train(
    training: TrainingConfig,
    folders: List[str],
    epochs: int,
    base_uri: Optional[str] = None,
    target: Optional[float] = None,
) -> Tuple[Curve, keras.Model]:
    """One training on `folders`' train split, validated on their eval split, as the Trainer trains (early
    stopping included); from `base_uri`'s weights if given; stopped at `target` if given."""
    started = time.perf_counter()
    keras.utils.set_random_seed(training.seed)
    model = build_and_compile(training, {})
    if base_uri:
        start = warm_start.start_from(model, os.path.join(base_uri, export.SERVING_DIR))
        assert start.warm, start.describe()
    fakes, size, batch = training.fakes(), training.model_settings().input_size, training.batch_size
    train_files, eval_files = split_files(folders, contract.TRAIN_SPLIT), split_files(folders, contract.EVAL_SPLIT)
    real, fake = data.label_counts(train_files, fakes)
    curve = Curve(started, target)
    model.fit(
        data.dataset(train_files, batch, True, None, training.seed, True, fakes, size),
        validation_data=data.dataset(eval_files, batch, False, None, training.seed, True, fakes, size),
        epochs=epochs,
        steps_per_epoch=max(1, -(-(real + fake) // batch)),
        class_weight=data.class_weights(real, fake),
        callbacks=[*callbacks(None, training.early_stopping_patience, training.ema_momentum), curve],
        verbose=0,
    )
    return curve, model


def one_seed(training: TrainingConfig, window: List[str], epochs: int, base_uri: str) -> Dict[str, Any]:
    """A fresh and a warm start on the window; the epochs and seconds each needs to reach the fresh one's AUC."""
    fresh, _ = train(training, window, epochs)
    target = max(fresh.aucs)
    warm, _ = train(training, window, epochs, base_uri=base_uri, target=target)
    fresh_epochs, warm_epochs = fresh.reach(target), warm.reach(target)
    figures = {
        "fresh_auc": target,
        "fresh_epochs": fresh_epochs,
        "fresh_seconds": fresh.seconds[fresh_epochs - 1],
        "warm_epochs": warm_epochs,
        "warm_seconds": warm.seconds[warm_epochs - 1] if warm_epochs else None,
        "fresh_curve": [round(auc, 4) for auc in fresh.aucs],
        "warm_curve": [round(auc, 4) for auc in warm.aucs],
    }
    if warm_epochs:
        figures["epochs_ratio"] = warm_epochs / fresh_epochs
        figures["seconds_ratio"] = figures["warm_seconds"] / figures["fresh_seconds"]
    return figures


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--videos", type=int, default=48, help="videos per span, about half of them fake")
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per video")
    parser.add_argument("--epochs", type=int, default=12, help="most epochs of each training")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the fresh and warm trainings on the window")
    parser.add_argument("--base-seed", type=int, default=100, help="seed of the base model trained on span 1")
    parser.add_argument("--patience", type=int, default=defaults.LOCAL_EARLY_STOPPING_PATIENCE)
    parser.add_argument("--backbone", default="blend_resnet")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--fake-source", default=defaults.LOCAL_FAKE_SOURCE, choices=contract.FAKE_SOURCES)
    args = BENCH.parse_args(parser)
    with tempfile.TemporaryDirectory() as work:
        folders = ingest_spans(work, args.videos, args.frames)

        def config(seed: int) -> TrainingConfig:
            return TrainingConfig(
                backbone=args.backbone,
                input_size=args.input_size,
                fake_source=args.fake_source,
                seed=seed,
                early_stopping_patience=args.patience,
            )

        base_curve, base = train(config(args.base_seed), [folders[1]], args.epochs)
        base_uri = os.path.join(work, "base")
        export.save_keras(base, base_uri)
        print(f"base (span 1, seed {args.base_seed}): eval AUC {max(base_curve.aucs):.3f}", flush=True)
        runs = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            runs[seed] = run = one_seed(config(seed), [folders[1], folders[2]], args.epochs, base_uri)
            print(
                f"seed {seed}: fresh reaches its AUC {run['fresh_auc']:.3f} at epoch {run['fresh_epochs']} "
                f"({run['fresh_seconds']:.0f} s); warm at epoch {run['warm_epochs']} "
                f"({run['warm_seconds'] or float('nan'):.0f} s); curves fresh {run['fresh_curve']}, warm "
                f"{run['warm_curve']}",
                flush=True,
            )
    reached = [run for run in runs.values() if run["warm_epochs"]]
    summary = {
        "seeds_reached": f"{len(reached)}/{len(runs)}",
        "median_epochs_ratio": statistics.median(r["epochs_ratio"] for r in reached) if reached else None,
        "median_seconds_ratio": statistics.median(r["seconds_ratio"] for r in reached) if reached else None,
        "mean_fresh_epochs": float(np.mean([r["fresh_epochs"] for r in runs.values()])),
    }
    print(
        f"warm start over fresh start: epochs {summary['median_epochs_ratio']}, wall time "
        f"{summary['median_seconds_ratio']} (medians over the seeds that reached; {summary['seeds_reached']} did)"
    )
    base_figures = {"eval_auc": max(base_curve.aucs), "curve": [round(auc, 4) for auc in base_curve.aucs]}
    BENCH.write(args, {"base": base_figures, "seeds": {str(k): v for k, v in runs.items()}, "summary": summary})


if __name__ == "__main__":
    main()
