"""The sample generator writes a deterministic DFDC-layout dataset that the DFDC reader reads."""

import json
import os

import cv2
import numpy as np

from deepfake_detection import sample_data, sample_swaps
from deepfake_detection.ingest.readers import detect_layout, read_dataset


def _first_frame(path):
    capture = cv2.VideoCapture(path)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_layout_labels_and_links(sample_dataset):
    assert detect_layout(sample_dataset) == "dfdc"
    metadata = json.load(open(os.path.join(sample_dataset, sample_data.PART_NAME, "metadata.json")))
    fakes = {name: entry for name, entry in metadata.items() if entry["label"] == "FAKE"}
    reals = {name for name, entry in metadata.items() if entry["label"] == "REAL"}
    assert len(fakes) == 2 and len(reals) == 2
    assert {entry["original"] for entry in fakes.values()} <= reals
    assert {entry["manipulation"] for entry in fakes.values()} <= set(sample_swaps.MANIPULATIONS)
    records = read_dataset(sample_dataset)
    assert len({r.source_id for r in records}) == 2


def test_fakes_differ_from_their_originals_only_around_the_face(sample_dataset):
    part = os.path.join(sample_dataset, sample_data.PART_NAME)
    metadata = json.load(open(os.path.join(part, "metadata.json")))
    for name, entry in metadata.items():
        if entry["label"] != "FAKE":
            continue
        fake = _first_frame(os.path.join(part, name)).astype(int)
        real = _first_frame(os.path.join(part, entry["original"])).astype(int)
        changed = np.abs(fake - real).max(axis=2) > 12
        assert 0.005 < changed.mean() < 0.3, entry["manipulation"]
        rows, cols = np.nonzero(changed)
        height, width = real.shape[:2]
        # the codec spreads a few small changes over the frame: the bulk of them sits on the face
        (top, bottom), (left, right) = np.percentile(rows, [5, 95]), np.percentile(cols, [5, 95])
        assert bottom - top < 0.7 * height and right - left < 0.6 * width, entry["manipulation"]


def _video_bytes_per_frame(path):
    capture = cv2.VideoCapture(path)
    frames = 0
    while capture.grab():
        frames += 1
    codec = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
    capture.release()
    return codec, os.path.getsize(path) / frames


def test_both_compression_levels_as_h264_with_the_level_in_the_metadata_and_the_examples(tmp_path):
    part = sample_data.generate(str(tmp_path), 4, seed=3, seconds=0.8)
    metadata = json.load(open(os.path.join(part, "metadata.json")))
    levels = {name: entry["compression"] for name, entry in metadata.items()}
    assert set(levels.values()) == set(sample_data.COMPRESSION_LEVELS)
    for entry in metadata.values():
        if entry["original"]:
            assert entry["compression"] == metadata[entry["original"]]["compression"]
    reals = {levels[name]: name for name, entry in metadata.items() if entry["label"] == "REAL"}
    codec, light = _video_bytes_per_frame(os.path.join(part, reals["c23"]))
    _, heavy = _video_bytes_per_frame(os.path.join(part, reals["c40"]))
    assert codec in ("avc1", "h264") and heavy < 0.6 * light
    assert {r.compression for r in read_dataset(str(tmp_path))} == set(sample_data.COMPRESSION_LEVELS)


def test_same_seed_same_dataset(tmp_path):
    first = sample_data.generate(str(tmp_path / "a"), 2, seed=7, seconds=0.4)
    second = sample_data.generate(str(tmp_path / "b"), 2, seed=7, seconds=0.4)
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))
    for name in os.listdir(first):
        if name.endswith(".mp4"):
            assert np.array_equal(_first_frame(os.path.join(first, name)), _first_frame(os.path.join(second, name)))
    assert open(os.path.join(first, "metadata.json")).read() == open(os.path.join(second, "metadata.json")).read()


def test_the_changed_mask_covers_every_changed_pixel_of_each_kind_and_little_else():
    videos = sample_data.plan(16, seed=3, seconds=0.2)
    fakes = [v for v in videos if v.swap is not None]
    assert {v.swap.kind for v in fakes} == set(sample_swaps.MANIPULATIONS)
    originals = {v.name: v for v in videos}
    for fake in fakes:
        t = 1
        changed = np.abs(
            fake.frames()[t].astype(int) - originals[fake.metadata["original"]].frames()[t].astype(int)
        ).max(axis=2)
        weight = fake.changed_mask(t)
        # a pixel that visibly moved was painted through the mask (Poisson cloning's drift outside it is fainter)
        assert (weight[changed > 12] > 0.004).all(), fake.swap.kind
        if fake.swap.kind != "poisson_swap":
            assert (weight[changed > 2] > 0.004).all(), fake.swap.kind
        # and the mask is the face (or its part), not the frame
        assert 0.005 < (weight > 0.5).mean() < 0.3, fake.swap.kind
        assert (changed[weight > 0.5] > 2).mean() > 0.5, fake.swap.kind
    assert not originals[fakes[0].metadata["original"]].changed_mask(0).any()
