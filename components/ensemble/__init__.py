"""EnsembleTrainer: a weighted ensemble of trained backbones, fitted on the eval split."""

from components.ensemble.component import EnsembleTrainer

__all__ = ["EnsembleTrainer"]
