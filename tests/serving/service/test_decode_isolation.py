"""The decode child's channel to the service: a private folder no other local user can enter, and answers
read as data (a header checked against the file's size, raw pixels), never unpickled."""

import json
import os

import cv2
import numpy as np
import pytest
import skimage.data

from deepfake_detection.ingest.ingest_config import IngestConfig
from serving.service import media
from serving.service.media import KIND_IMAGE, IsolatedDecoder, MediaError
from tests.serving import decoders


def astronaut_png():
    return cv2.imencode(".png", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()


def decode_with(decoder):
    isolated = IsolatedDecoder(30, decoder=decoder, servers=1)
    try:
        return isolated.decode(astronaut_png(), KIND_IMAGE, "png", IngestConfig())
    finally:
        isolated.close()


def test_a_taken_over_decoder_cannot_make_the_service_run_code(tmp_path, monkeypatch):
    marker = tmp_path / "the payload ran"
    monkeypatch.setenv(decoders.MARKER_VARIABLE, str(marker))
    with pytest.raises(MediaError) as refused:
        decode_with(decoders.planting_a_pickle)
    assert refused.value.kind == "decoder_error" and refused.value.status == 422
    assert not marker.exists(), "the service unpickled what the decode child wrote"


def test_no_other_local_user_can_read_the_media_or_plant_an_answer():
    report = json.loads(bytes(decode_with(decoders.what_another_user_can_do).frames[0].image))
    assert report["folder_mode"] == 0o700 and report["media_mode"] == 0o600
    assert not os.path.exists(report["folder"]), "the decode folder outlives the decode"
    if os.geteuid() != 0:
        pytest.skip("not root: no second user to try the attack as (the modes above are checked)")
    assert report["as_nobody"] == {
        "list": False,
        "read_media": False,
        "create_answer": False,
        "create_in_folder": False,
    }


def write(tmp_path, outcome, fields, frames=(), extra=b""):
    path = tmp_path / "answer"
    with open(path, "wb") as f:
        media.write_answer(f, outcome, fields, frames)
        f.write(extra)
    return str(path)


FRAME_FIELDS = {"indices": [0, 5], "timestamps": [0.0, 0.2], "shape": [4, 3, 3], "width": 3, "height": 4}


def test_a_well_formed_answer_is_mapped_read_only(tmp_path):
    frames = [np.full((4, 3, 3), n, np.uint8) for n in (1, 2)]
    path = write(tmp_path, "ok", FRAME_FIELDS, frames)
    result = media._result_of(path)
    assert [f.index for f in result.frames] == [0, 5] and (result.width, result.height) == (3, 4)
    assert all(np.array_equal(f.image, expected) for f, expected in zip(result.frames, frames, strict=True))
    assert not result.frames[0].image.flags.writeable


@pytest.mark.parametrize(
    "fields, pixels, extra",
    [
        (FRAME_FIELDS, 1, b""),  # fewer pixels than the header promises
        (FRAME_FIELDS, 2, b"x"),  # more
        ({**FRAME_FIELDS, "shape": [4, -3, 3]}, 2, b""),
        ({**FRAME_FIELDS, "indices": [0]}, 2, b""),
        ({**FRAME_FIELDS, "timestamps": ["0", 1]}, 2, b""),
        ({**FRAME_FIELDS, "shape": [1, 1, 1, 1]}, 2, b""),
    ],
)
def test_an_answer_that_breaks_the_format_is_refused(tmp_path, fields, pixels, extra):
    frames = [np.zeros((4, 3, 3), np.uint8)] * pixels
    path = write(tmp_path, "ok", fields, frames, extra)
    with pytest.raises(MediaError) as refused:
        media._result_of(path)
    assert refused.value.kind == "decoder_error"


def test_an_answer_through_a_link_or_of_another_kind_is_refused(tmp_path):
    real = write(tmp_path, "ok", FRAME_FIELDS, [np.zeros((4, 3, 3), np.uint8)] * 2)
    link = tmp_path / "link"
    link.symlink_to(real)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (link, fifo):
        with pytest.raises(MediaError):
            media._result_of(str(path))
