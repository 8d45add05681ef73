"""Shared fixtures: tiny generated videos and broken files of every kind."""

import pytest

from deepfake_detection import sample_data


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> str:
    """A DFDC-layout dataset of 4 one-second videos (2 real, 2 fake) with real faces."""
    root = str(tmp_path_factory.mktemp("sample_dataset"))
    sample_data.generate(root, num_videos=4, seed=1, seconds=1.0)
    return root
