"""Keyframe planning, the detection scale from face sizes, predicted boxes and search squares (no detector)."""

import pytest

from deepfake_detection.ingest import keyframes
from deepfake_detection.ingest.faces import Detection


def face(box, confidence=0.99, frame=0):
    return Detection(frame, box, confidence)


@pytest.mark.parametrize(
    "count, every, expected",
    [(10, 4, [0, 4, 8, 9]), (9, 4, [0, 4, 8]), (1, 4, [0]), (0, 4, []), (3, 1, [0, 1, 2]), (5, 10, [0, 4])],
)
def test_keyframes_are_every_nth_sampled_frame_and_the_last(count, every, expected):
    assert keyframes.keyframe_positions(count, every) == expected


def test_the_scale_brings_the_smallest_face_to_the_target_size_and_never_enlarges_past_the_design_scale():
    assert keyframes.scale_for_faces([300, 200], 48, 0.5) == pytest.approx(0.24)
    assert keyframes.scale_for_faces([30], 48, 1.0) == 1.0
    assert keyframes.scale_for_faces([], 48, 0.5) == 0.5
    assert keyframes.scale_for_faces([300], 0, 0.5) == 0.5


def test_a_face_seen_in_both_keyframes_moves_linearly_and_a_face_seen_once_stays_put():
    before = [face((0, 0, 100, 100)), face((500, 500, 50, 50))]
    after = [face((20, 10, 100, 100))]
    boxes = keyframes.predicted_boxes(before, after, 0.5)
    assert boxes == [(10, 5, 100, 100), (500, 500, 50, 50)]


def test_two_faces_pair_with_their_own_next_position():
    before = [face((0, 0, 100, 100)), face((300, 0, 100, 100))]
    after = [face((310, 0, 100, 100)), face((10, 0, 100, 100))]
    assert sorted(keyframes.predicted_boxes(before, after, 0.5)) == [(5, 0, 100, 100), (305, 0, 100, 100)]


def test_searches_cover_every_frame_between_keyframes_once_per_expected_face():
    found = {0: [face((0, 0, 10, 10))], 4: [face((4, 0, 10, 10))], 5: []}
    searches = keyframes.plan_searches([0, 4, 5], found)
    assert [(p, box[0]) for p, box in searches] == [(1, 1), (2, 2), (3, 3)]


def test_the_search_square_is_centred_on_the_face_and_may_leave_the_frame():
    assert keyframes.search_square((10, 20, 40, 60), 2.0) == (-30, -10, 120)


def test_the_match_is_the_detection_overlapping_the_prediction_most():
    near, far = face((12, 10, 100, 100)), face((400, 400, 100, 100))
    assert keyframes.best_match((10, 10, 100, 100), [far, near]) == near
    assert keyframes.best_match((10, 10, 100, 100), [far]) is None


def test_two_searches_that_found_the_same_face_keep_the_more_confident_detection():
    strong, weak, other = face((0, 0, 100, 100), 0.99), face((5, 5, 100, 100), 0.92), face((300, 0, 90, 90))
    assert sorted(keyframes.distinct_faces([weak, other, strong]), key=lambda d: d.box) == [strong, other]
