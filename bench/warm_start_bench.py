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
moving average of the weights, early stopping, learning-rate halving) on the
same batches, up to `--epochs` epochs; the warm start runs at the Trainer's
fraction of the learning rate (`warm_start.LEARNING_RATE_FACTOR`), is scored
before training too (epoch 0) and stops once it reaches the fresh model's
AUC. The fresh model's eval AUC is its best epoch's (the weights the Trainer
keeps); the figures are the epochs and the wall time (training and
validation, the warm start's loading included) each needs to first reach
it, and their ratio, warm over fresh (goal: at most a third); a warm start
that never reaches it counts as not reached, and then its best AUC and how
long the fresh start needed for that AUC are reported instead. Figures and
their reading: docs/warm-start.md.

    python bench/warm_start_bench.py [--seeds 0,1,2] [--videos 24] [--epochs 20] [--backbone blend_resnet]
        [--input-size 64] [--learning-rate-factor 0.1]

One seed takes about 6.5 minutes on 2 shared cores (ingest and base included): run seeds one at a time to stay
under 10 minutes a command.
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
from deepfake_detection.models.registry import get_backbone
from deepfake_detection.models.training import TrainingConfig, build_and_compile, callbacks, compile_model

BENCH = _common.Bench(
    "warm_start_bench",
    "a warm start reaches the fresh model's eval AUC in at most a third of the fresh start's epochs and wall time",
)


class Curve(keras.callbacks.Callback):
    """Validation AUC and wall time since `started` after every epoch; given a `target`, training stops at the
    first epoch that reaches it."""

    def __init__(self, started: float, target: Optional[float] = None):
        super().__init__()
        self.started, self.target = started, target
        self.aucs: List[float] = [float("nan")]  # epoch 0: the starting weights, measured for warm starts only
        self.seconds: List[float] = [0.0]

    def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
        self.aucs.append(float(logs["val_auc"]))
        self.seconds.append(time.perf_counter() - self.started)
        if self.target is not None and self.reach(self.target) is not None:
            self.model.stop_training = True

    def reach(self, target: float) -> Optional[int]:
        """The first epoch whose validation AUC reaches `target` (0: the warm start's weights before training),
        None if none does."""
        return next((epoch for epoch, auc in enumerate(self.aucs) if auc >= target - 1e-9), None)


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
    learning_rate_factor: float = 1.0,
) -> Tuple[Curve, keras.Model]:
    """One training on `folders`' train split, validated on their eval split, as the Trainer trains (early
    stopping included); from `base_uri`'s weights if given, at `learning_rate_factor` of the backbone's rate;
    stopped once it reaches `target` if given."""
    started = time.perf_counter()
    keras.utils.set_random_seed(training.seed)
    model = build_and_compile(training, {})
    if base_uri:
        start = warm_start.start_from(model, os.path.join(base_uri, export.SERVING_DIR))
        assert start.warm, start.describe()
        compile_model(model, get_backbone(training.backbone).learning_rate * learning_rate_factor)
    fakes, size, batch = training.fakes(), training.model_settings().input_size, training.batch_size
    train_files, eval_files = split_files(folders, contract.TRAIN_SPLIT), split_files(folders, contract.EVAL_SPLIT)
    real, fake = data.label_counts(train_files, fakes)
    curve = Curve(started, target)
    validation = data.dataset(eval_files, batch, False, None, training.seed, True, fakes, size)
    if base_uri:
        curve.aucs[0] = model.evaluate(validation, return_dict=True, verbose=0)["auc"]
        curve.seconds[0] = time.perf_counter() - started
        if target is not None and curve.reach(target) is not None:
            return curve, model
    model.fit(
        data.dataset(train_files, batch, True, None, training.seed, True, fakes, size),
        validation_data=validation,
        epochs=epochs,
        steps_per_epoch=max(1, -(-(real + fake) // batch)),
        class_weight=data.class_weights(real, fake),
        callbacks=[*callbacks(None, training.early_stopping_patience, training.ema_momentum), curve],
        verbose=0,
    )
    return curve, model


def one_seed(
    training: TrainingConfig, window: List[str], epochs: int, base_uri: str, learning_rate_factor: float
) -> Dict[str, Any]:
    """A fresh and a warm start on the window; the epochs and seconds each needs to reach the fresh one's AUC."""
    fresh, _ = train(training, window, epochs)
    target = max(fresh.aucs[1:])
    warm, _ = train(training, window, epochs, base_uri, target, learning_rate_factor)
    fresh_epochs, warm_epochs = fresh.reach(target), warm.reach(target)
    figures = {
        "fresh_auc": target,
        "fresh_epochs": fresh_epochs,
        "fresh_seconds": fresh.seconds[fresh_epochs],
        "warm_epochs": warm_epochs,
        "warm_seconds": warm.seconds[warm_epochs] if warm_epochs is not None else None,
        "fresh_curve": [round(auc, 4) for auc in fresh.aucs[1:]],
        "warm_curve": [round(auc, 4) for auc in warm.aucs],
    }
    warm_best = max(warm.aucs)
    fresh_to_warm_best = fresh.reach(warm_best)
    figures["warm_best_auc"], figures["warm_best_epoch"] = warm_best, warm.reach(warm_best)
    figures["warm_best_seconds"] = warm.seconds[figures["warm_best_epoch"]]
    figures["fresh_epochs_to_warm_best"] = fresh_to_warm_best
    figures["fresh_seconds_to_warm_best"] = fresh.seconds[fresh_to_warm_best] if fresh_to_warm_best else None
    if warm_epochs is not None:
        figures["epochs_ratio"] = warm_epochs / fresh_epochs
        figures["seconds_ratio"] = figures["warm_seconds"] / figures["fresh_seconds"]
    return figures


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--videos", type=int, default=24, help="videos per span, about half of them fake")
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per video")
    parser.add_argument("--epochs", type=int, default=defaults.LOCAL_EPOCHS, help="most epochs of each training")
    parser.add_argument(
        "--learning-rate-factor",
        type=float,
        default=warm_start.LEARNING_RATE_FACTOR,
        help="the warm start's learning rate, a fraction of the backbone's (the Trainer's by default)",
    )
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
        print(f"base (span 1, seed {args.base_seed}): eval AUC {max(base_curve.aucs[1:]):.3f}", flush=True)
        runs = {}
        for seed in (int(s) for s in args.seeds.split(",")):
            window = [folders[1], folders[2]]
            runs[seed] = run = one_seed(config(seed), window, args.epochs, base_uri, args.learning_rate_factor)
            print(
                f"seed {seed}: fresh reaches its AUC {run['fresh_auc']:.3f} at epoch {run['fresh_epochs']} "
                f"({run['fresh_seconds']:.0f} s); warm at epoch {run['warm_epochs']} "
                f"({run['warm_seconds'] or float('nan'):.0f} s); warm's best {run['warm_best_auc']:.3f} at epoch "
                f"{run['warm_best_epoch']} ({run['warm_best_seconds']:.0f} s), which fresh reaches at epoch "
                f"{run['fresh_epochs_to_warm_best']}; curves fresh {run['fresh_curve']}, warm {run['warm_curve']}",
                flush=True,
            )
    reached = [run for run in runs.values() if run["warm_epochs"] is not None]
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
    base_figures = {"eval_auc": max(base_curve.aucs[1:]), "curve": [round(auc, 4) for auc in base_curve.aucs[1:]]}
    BENCH.write(args, {"base": base_figures, "seeds": {str(k): v for k, v in runs.items()}, "summary": summary})


if __name__ == "__main__":
    main()
