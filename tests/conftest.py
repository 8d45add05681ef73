"""Shared fixtures: a tiny generated dataset and exported face models (helpers are in `tests/helpers.py`)."""

import pytest

from deepfake_detection import sample_data
from tests.helpers import export_face_model


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> str:
    """A DFDC-layout dataset of 4 one-second videos (2 real, 2 fake) with real faces."""
    root = str(tmp_path_factory.mktemp("sample_dataset"))
    sample_data.generate(root, num_videos=4, seed=1, seconds=1.0)
    return root


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory):
    """Two small face models (seeds 1 and 2), exported as SavedModels with their serving signatures."""
    root = tmp_path_factory.mktemp("exports")
    paths = {}
    for seed in (1, 2):
        paths[seed] = str(root / f"seed{seed}")
        export_face_model(paths[seed], seed)
    return paths
