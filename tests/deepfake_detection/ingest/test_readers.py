"""Each dataset reader on a tiny tree built in the test, and layout auto-detection."""

import json
import os

import pytest

from deepfake_detection.ingest.readers import detect_layout, read_dataset


def touch(root, *relative_paths):
    for relative_path in relative_paths:
        path = os.path.join(root, relative_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()


def by_path(records):
    return {r.relative_path: r for r in records}


def test_folders_layout(tmp_path):
    touch(tmp_path, "real/a.mp4", "real/sub/b.mp4", "fake/faceswap/c.mp4", "fake/d.mp4", "real/.hidden.mp4")
    assert detect_layout(str(tmp_path)) == "folders"
    records = by_path(read_dataset(str(tmp_path)))
    assert sorted(records) == ["fake/d.mp4", "fake/faceswap/c.mp4", "real/a.mp4", "real/sub/b.mp4"]
    assert records["real/a.mp4"].label == 0 and records["real/a.mp4"].manipulation == "original"
    assert records["fake/faceswap/c.mp4"].label == 1 and records["fake/faceswap/c.mp4"].manipulation == "faceswap"
    assert records["fake/d.mp4"].manipulation == "unknown"
    assert records["real/a.mp4"].video_id == "folders/real/a.mp4"


def test_videos_differing_only_in_extension_get_distinct_ids(tmp_path):
    touch(tmp_path, "real/clip.mp4", "real/clip.webm", "fake/clip.mp4")
    records = read_dataset(str(tmp_path))
    assert len({r.video_id for r in records}) == 3
    assert len({r.source_id for r in records}) == 3
    again = read_dataset(str(tmp_path))
    assert [(r.video_id, r.source_id) for r in again] == [(r.video_id, r.source_id) for r in records]


def test_dfdc_layout_links_fakes_to_their_originals(tmp_path):
    part = tmp_path / "dfdc_train_part_3"
    touch(part, "orig.mp4", "fake1.mp4", "stray.mp4")
    metadata = {
        "orig.mp4": {"label": "REAL", "split": "train", "original": None},
        "fake1.mp4": {"label": "FAKE", "split": "train", "original": "orig.mp4"},
        "gone.mp4": {"label": "FAKE", "split": "train", "original": "orig.mp4"},
    }
    (part / "metadata.json").write_text(json.dumps(metadata))
    assert detect_layout(str(tmp_path)) == "dfdc"
    records = by_path(read_dataset(str(tmp_path)))
    fake, orig = records["dfdc_train_part_3/fake1.mp4"], records["dfdc_train_part_3/orig.mp4"]
    assert (fake.label, fake.manipulation, fake.dataset) == (1, "deepfake", "dfdc")
    assert (orig.label, orig.manipulation) == (0, "original")
    assert fake.source_id == orig.source_id == "dfdc:orig"
    assert records["dfdc_train_part_3/gone.mp4"].reject_reason is None
    assert "not listed" in records["dfdc_train_part_3/stray.mp4"].reject_reason


def test_dfdc_test_part_with_labels_csv(tmp_path):
    touch(tmp_path, "test/a.mp4", "test/b.mp4")
    (tmp_path / "test" / "labels.csv").write_text("filename,label\na.mp4,1\nb.mp4,0\n")
    records = by_path(read_dataset(str(tmp_path)))
    assert records["test/a.mp4"].label == 1 and records["test/b.mp4"].label == 0


def test_dfdc_bad_label_names_the_file(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"x.mp4": {"label": "MAYBE"}}))
    with pytest.raises(ValueError, match="x.mp4 has label 'MAYBE'"):
        read_dataset(str(tmp_path))


def test_faceforensics_layout_groups_pairs_and_uses_official_splits(tmp_path):
    touch(
        tmp_path,
        "original_sequences/youtube/c23/videos/071.mp4",
        "original_sequences/youtube/c23/videos/054.mp4",
        "original_sequences/youtube/c40/videos/999.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/071_054.mp4",
        "manipulated_sequences/Face2Face/c23/videos/054_071.mp4",
        "original_sequences/actors/raw/videos/01__walking.mp4",
        "manipulated_sequences/DeepFakeDetection/raw/videos/01_02__walking__ABC.mp4",
    )
    os.makedirs(tmp_path / "splits")
    (tmp_path / "splits" / "val.json").write_text(json.dumps([["071", "054"]]))
    assert detect_layout(str(tmp_path)) == "ffpp"
    records = {os.path.basename(r.path): r for r in read_dataset(str(tmp_path))}
    deepfake = records["071_054.mp4"]
    assert (deepfake.label, deepfake.manipulation, deepfake.compression) == (1, "Deepfakes", "c23")
    assert records["054_071.mp4"].manipulation == "Face2Face"
    group = {records[n].source_id for n in ("071.mp4", "054.mp4", "071_054.mp4", "054_071.mp4")}
    assert group == {"ffpp:054_071"}
    assert {records[n].split for n in ("071.mp4", "054.mp4", "071_054.mp4")} == {"eval"}
    assert records["999.mp4"].split is None and records["999.mp4"].compression == "c40"
    assert records["01__walking.mp4"].source_id == records["01_02__walking__ABC.mp4"].source_id


def test_celebdf_layout_labels_by_folder_and_reads_the_test_list(tmp_path):
    touch(tmp_path, "Celeb-real/id0_0001.mp4", "Celeb-synthesis/id0_id16_0001.mp4", "YouTube-real/00170.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "0 Celeb-synthesis/id0_id16_0001.mp4\n1 YouTube-real/00170.mp4\n"
    )
    assert detect_layout(str(tmp_path)) == "celebdf"
    records = by_path(read_dataset(str(tmp_path)))
    fake = records["Celeb-synthesis/id0_id16_0001.mp4"]
    real = records["Celeb-real/id0_0001.mp4"]
    assert (fake.label, fake.manipulation, fake.split) == (1, "celeb_synthesis", "test")
    assert (real.label, real.split) == (0, None)
    assert fake.source_id == real.source_id == "celebdf:id0"
    assert records["YouTube-real/00170.mp4"].split == "test"


def test_unknown_layout_says_what_was_expected(tmp_path):
    touch(tmp_path, "videos/a.mp4")
    with pytest.raises(ValueError, match="Cannot tell the dataset layout"):
        read_dataset(str(tmp_path))


def test_layout_can_be_forced(tmp_path):
    touch(tmp_path, "real/a.mp4", "metadata.json")
    (tmp_path / "metadata.json").write_text("{}")
    assert [r.relative_path for r in read_dataset(str(tmp_path), layout="folders")] == ["real/a.mp4"]


def test_missing_input_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(str(tmp_path / "absent"))
