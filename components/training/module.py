"""The old path of `components/trainer_module.py`, kept because pipelines compiled or recorded in ML Metadata
before the move name `components.training.module.run_fn` / `tuner_fn`."""

from components.trainer_module import run_fn, tuner_fn

__all__ = ["run_fn", "tuner_fn"]
