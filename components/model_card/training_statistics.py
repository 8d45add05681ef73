"""The training statistics a pushed version carries in `assets.extra/`, for drift (docs/drift.md): TFDV's
`FeatureStats.pb` of the training split as StatisticsGen wrote it, and the drift features' histograms as JSON
for the detection service, which has no TensorFlow."""

import json
import os
from typing import List

import tensorflow as tf
import tensorflow_data_validation as tfdv

from deepfake_detection.evaluation import drift

# The split whose statistics describe what the model was trained on.
TRAINING_SPLIT = "train"
STATISTICS_FILE = "FeatureStats.pb"


def write_training_statistics(statistics_path: str, version_folder: str) -> List[str]:
    """Copies TFDV statistics into a pushed version's `assets.extra/`, with the drift features' histograms as JSON
    beside them; returns the paths written."""
    folder = os.path.join(version_folder, drift.STATISTICS_DIR)
    tf.io.gfile.makedirs(folder)
    binary = os.path.join(folder, drift.TRAINING_STATISTICS_FILE)
    tf.io.gfile.copy(statistics_path, binary, overwrite=True)
    histograms = drift.histograms_of(tfdv.load_stats_binary(statistics_path))
    readable = os.path.join(folder, drift.TRAINING_HISTOGRAMS_FILE)
    with tf.io.gfile.GFile(readable, "w") as f:
        json.dump({name: histogram.to_dict() for name, histogram in histograms.items()}, f, indent=1)
    return [binary, readable]
