"""Self-blended images: the mask stays on the face, pairs are (real, fake), every draw follows its seed."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection import contract, face_geometry
from deepfake_detection.models import data, self_blend
from tests.helpers import astronaut_face


def test_mask_lies_on_the_face_and_is_a_soft_blend_weight():
    image, landmarks = astronaut_face()
    marks = self_blend.landmarks_in_pixels(landmarks, 128, 128)
    x, y, w, h = cv2.boundingRect(np.round(face_geometry.outline_points(marks, forehead=0.7)).astype(np.int32))
    for seed in range(20):
        _, mask = self_blend.self_blend(image, landmarks, np.random.default_rng(seed))
        assert mask.shape == (128, 128) and 0.0 <= mask.min() and mask.max() <= 1.0 + 1e-6
        assert mask.max() >= 0.25 - 1e-6
        rows, cols = np.nonzero(mask > 0.05)
        # the source shift moves the mask by at most 5 % of the crop; the elastic warp by 6 %.
        slack = 0.15 * 128
        assert rows.min() >= y - slack and rows.max() <= y + h + slack
        assert cols.min() >= x - slack and cols.max() <= x + w + slack
        assert mask[:8].max() < 0.05 and mask[-8:].max() < 0.05


def test_fake_equals_one_image_outside_the_mask_and_changes_inside():
    image, landmarks = astronaut_face()
    changed_inside = 0
    for seed in range(10):
        fake, mask = self_blend.self_blend(image, landmarks, np.random.default_rng(seed))
        difference = np.abs(fake.astype(int) - image.astype(int)).max(axis=-1)
        if np.percentile(difference[mask == 0], 99) <= 1:
            inside = difference[mask > 0.5]
            changed_inside += inside.size > 0 and inside.mean() > 2
    assert changed_inside >= 3, "with the source altered, the blend changes the face and nothing else"


def test_pair_is_real_then_fake_post_processed_alike():
    image, landmarks = astronaut_face()
    for seed in range(12):
        pair = self_blend.blend_pair(image, landmarks, np.array([0, seed]))
        assert pair.shape == (2, 128, 128, 3) and pair.dtype == np.uint8
        real = pair[0].astype(float)
        candidates = [image, image[:, ::-1]]
        assert min(np.abs(real - c).mean() for c in candidates) < 8, "the first image is the real face (JPEG at worst)"
        assert np.abs(pair[1].astype(float) - real).mean() > 0.5, "the second is its blend"


def test_cross_blend_pastes_the_partner_face_colour_matched():
    image, landmarks = astronaut_face()
    partner = np.ascontiguousarray(image[:, ::-1, ::-1])
    fake, mask = self_blend.cross_blend(image, landmarks, partner, landmarks, np.random.default_rng(0))
    inside, outside = mask > 0.9, mask == 0
    assert np.abs(fake[outside].astype(int) - image[outside]).max() <= 1
    assert np.abs(fake[inside].astype(int) - image[inside]).mean() > 5
    assert np.abs(fake[inside].mean(axis=0) - image[inside].mean(axis=0)).max() < 12, "colour-corrected"


def test_a_batch_pairs_each_real_face_and_passes_fakes_through():
    image, landmarks = astronaut_face(64)
    images = np.stack([image, image[:, ::-1], image])
    out = self_blend.blend_batch(images, np.stack([landmarks] * 3), np.array([True, False, True]), np.array([0, 1]))
    assert out.shape == (3, 2, 64, 64, 3)
    np.testing.assert_array_equal(out[1, 0], out[1, 1])
    np.testing.assert_array_equal(
        out, self_blend.blend_batch(images, np.stack([landmarks] * 3), np.array([True, False, True]), np.array([0, 1]))
    )


def test_same_seed_same_blend_other_seed_other_blend():
    image, landmarks = astronaut_face()
    first = self_blend.blend_pair(image, landmarks, np.array([3, 7]))
    np.testing.assert_array_equal(first, self_blend.blend_pair(image, landmarks, np.array([3, 7])))
    assert not np.array_equal(first, self_blend.blend_pair(image, landmarks, np.array([3, 8])))


def test_a_clip_is_blended_with_the_same_draws_in_every_frame():
    image, landmarks = astronaut_face(64)
    clip = np.stack([image] * 3)
    pair = self_blend.blend_pair(clip, np.stack([landmarks] * 3), np.array([1, 2]))
    assert pair.shape == (2, 3, 64, 64, 3)
    frame_to_frame = np.abs(pair[1, 0].astype(float) - pair[1, 2]).mean()
    fake_to_real = np.abs(pair[1].astype(float) - pair[0]).mean()
    assert frame_to_frame < 4 and frame_to_frame < fake_to_real, "only per-frame sensor noise differs"


def _write_faces(path, labels, manipulations):
    image, landmarks = astronaut_face(64)
    encoded = tf.io.encode_png(image).numpy()
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for label, manipulation in zip(labels, manipulations, strict=True):
            feature = {
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                contract.MANIPULATION_KEY: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[manipulation.encode()])
                ),
                contract.FACE_LANDMARKS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=landmarks)),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_self_blended_input_uses_real_faces_only_each_beside_its_blend(tmp_path):
    _write_faces(tmp_path / "a.gz", [0, 1, 0, 1], ["original", "face_swap", "original", "self_warp"])
    fakes = data.FakeSource(contract.FAKE_SOURCE_SELF_BLENDED)
    [(pixels, labels)] = list(data.dataset([str(tmp_path / "a.gz")], 8, training=False, fake_source=fakes))
    assert labels.numpy().tolist() == [0, 1, 0, 1]
    assert pixels.shape == (4, data.CROP_SIZE, data.CROP_SIZE, 3)
    assert data.label_counts([str(tmp_path / "a.gz")], fakes) == (2, 2)


def test_both_adds_dataset_fakes_except_held_out_ones(tmp_path):
    _write_faces(tmp_path / "a.gz", [0, 1, 0, 1], ["original", "face_swap", "original", "self_warp"])
    both = data.FakeSource(contract.FAKE_SOURCE_BOTH, held_out=("self_warp",))
    [(_, labels)] = list(data.dataset([str(tmp_path / "a.gz")], 8, training=False, fake_source=both))
    assert labels.numpy().tolist() == [0, 1, 1, 0, 1]
    assert data.label_counts([str(tmp_path / "a.gz")], both) == (2, 3)
    only_dataset = data.FakeSource(contract.FAKE_SOURCE_DATASET, held_out=("face_swap",))
    assert data.label_counts([str(tmp_path / "a.gz")], only_dataset) == (2, 1)


def test_unknown_fake_source_is_refused():
    with pytest.raises(ValueError, match="Invalid fake source 'gan'"):
        data.FakeSource("gan")


def test_clips_of_real_faces_come_with_their_blended_clips(tmp_path):
    image, landmarks = astronaut_face(64)
    encoded = tf.io.encode_png(image).numpy()
    with tf.io.TFRecordWriter(str(tmp_path / "clips.gz"), "GZIP") as writer:
        for label in (0, 1, 0):
            feature = {
                contract.CLIP_FRAMES_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded] * 2)),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                contract.FACE_LANDMARKS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=list(landmarks) * 2)),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    fakes = data.FakeSource(contract.FAKE_SOURCE_SELF_BLENDED)
    [(clips, labels)] = list(data.dataset([str(tmp_path / "clips.gz")], 8, False, 2, fake_source=fakes, size=64))
    assert clips.shape == (4, 2, 64, 64, 3)
    assert labels.numpy().tolist() == [0, 1, 0, 1]


def test_part_regions_are_parts_of_the_face_at_varied_places():
    image, landmarks = astronaut_face()
    marks = self_blend.landmarks_in_pixels(landmarks, 128, 128)
    face = face_geometry.hull_mask(marks, (128, 128), forehead=0.7)
    centres = set()
    for seed in range(40):
        mask = self_blend.part_region(marks, (128, 128), np.random.default_rng(seed))
        inside = mask > 0.5 * mask.max()
        assert 0.005 < inside.mean() < 0.8 * face.mean(), "a part covers some of the face, not all of it"
        assert (face[inside] > 0).mean() > 0.5, "and lies mostly on the face"
        rows, cols = np.nonzero(inside)
        centres.add((int(rows.mean()) // 16, int(cols.mean()) // 16))
    assert len(centres) >= 4, "mouths, eyes and noses lie in different places"


def test_located_pairs_map_what_was_pasted_flipped_with_the_faces():
    image, landmarks = astronaut_face(64)
    images, maps = self_blend.located_batch(np.stack([image] * 6), np.stack([landmarks] * 6), np.array([0, 5]), 16)
    assert images.shape == (6, 2, 64, 64, 3) and maps.shape == (6, 2, 16, 16)
    assert maps[:, 0].max() == 0, "a real face has nothing pasted"
    assert (maps[:, 1].max(axis=(1, 2)) > 0.9).all() and maps.min() >= 0 and maps.max() <= 1
    for pair, located in zip(images, maps[:, 1], strict=True):
        changed = np.abs(pair[1].astype(float) - pair[0]).max(axis=-1)
        cells = cv2.resize(changed, (16, 16), interpolation=cv2.INTER_AREA)
        assert cells[located > 0.5].mean() > 2 * cells[located == 0].mean(), "the map covers where the faces differ"
    again = self_blend.located_batch(np.stack([image] * 6), np.stack([landmarks] * 6), np.array([0, 5]), 16)
    np.testing.assert_array_equal(images, again[0])


def test_locator_input_is_every_real_face_then_its_located_pseudo_fake(tmp_path):
    _write_faces(tmp_path / "a.gz", [0, 1, 0, 1], ["original", "face_swap", "original", "self_warp"])
    [(pixels, maps)] = list(data.locator_dataset([str(tmp_path / "a.gz")], 8, training=False, grid=16, size=64))
    assert pixels.shape == (4, 64, 64, 3) and maps.shape == (4, 16, 16)
    assert maps.numpy().max(axis=(1, 2)).tolist()[::2] == [0.0, 0.0] and maps.numpy()[1::2].max() > 0.9
