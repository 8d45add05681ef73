"""A person's maps: each face keeps its own share, the rest is its person's mean; people do not mix."""

import numpy as np
import pytest

from deepfake_detection.evaluation.person_maps import with_person_maps


def test_each_face_mixes_its_own_map_with_its_persons_mean_only():
    maps = np.zeros((5, 2, 2))
    maps[0, 0, 0] = maps[1, 0, 0] = 1.0  # person "a" looks edited top left in two frames
    maps[2, 1, 1] = 0.4  # and bottom right in one
    maps[3, 1, 0] = maps[4, 1, 0] = 0.8  # person "b" bottom left
    mixed = with_person_maps(maps, ["a", "a", "a", "b", "b"])
    assert np.unravel_index(mixed[2].argmax(), (2, 2)) == (0, 0), "the person's steady evidence wins a noisy frame"
    np.testing.assert_allclose(mixed[0], 0.5 * maps[0] + 0.5 * maps[:3].mean(axis=0))
    np.testing.assert_allclose(mixed[3:], maps[3:])  # two identical faces of one person stay as they were
    assert mixed[3:, 0, 0].max() == 0, "no map leaks into another person's"
    assert 0 <= mixed.min() and mixed.max() <= maps.max()


def test_a_person_seen_once_keeps_its_own_map():
    maps = np.random.default_rng(0).uniform(size=(2, 4, 4))
    np.testing.assert_allclose(with_person_maps(maps, [0, 1]), maps)
    with pytest.raises(ValueError, match="2 maps but 1 persons"):
        with_person_maps(maps, [0])
