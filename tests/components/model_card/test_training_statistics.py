"""A pushed version's training statistics: StatisticsGen's `FeatureStats.pb` copied into `assets.extra/` as TFDV
reads it, and the drift features' standard histograms beside it as JSON, equal to TFDV's own."""

import pandas as pd
import tensorflow_data_validation as tfdv

from components.model_card.training_statistics import write_training_statistics
from deepfake_detection.evaluation import drift


def test_the_version_carries_tfdvs_statistics_and_their_histograms(tmp_path):
    faces = pd.DataFrame(
        {
            "brightness": [float(50 + i % 40) for i in range(200)],
            "face_size": [64 + i % 30 for i in range(200)],
            "label": [i % 2 for i in range(200)],
        }
    )
    statistics = tfdv.generate_statistics_from_dataframe(faces)
    source = tmp_path / "Split-train" / "FeatureStats.pb"
    source.parent.mkdir()
    source.write_bytes(statistics.SerializeToString())
    written = write_training_statistics(str(source), str(tmp_path / "faces" / "7"))
    folder = tmp_path / "faces" / "7" / drift.STATISTICS_DIR
    assert sorted(written) == sorted(
        str(folder / name) for name in (drift.TRAINING_STATISTICS_FILE, drift.TRAINING_HISTOGRAMS_FILE)
    )
    assert tfdv.load_stats_binary(str(folder / drift.TRAINING_STATISTICS_FILE)) == statistics
    histograms = drift.read_training_histograms(str(tmp_path / "faces" / "7"))
    assert set(histograms) == {"brightness", "face_size"}  # the label is not a drift feature
    expected = drift.histograms_of(statistics)["brightness"]
    assert histograms["brightness"].buckets == expected.buckets and len(expected.buckets) == drift.STANDARD_BUCKETS
    assert drift.read_training_histograms(str(tmp_path)) is None
