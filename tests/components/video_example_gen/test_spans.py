"""Span patterns and the whole-tree fingerprint: TFX's forms accepted, every change of a span's files seen."""

import os

import pytest

from components.video_example_gen import spans


def _write(path, content=b"video"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)


@pytest.mark.parametrize("pattern", ["span-{SPAN}", "span-{SPAN:3}", "{YYYY}-{MM}-{DD}", "span-{SPAN}/v{VERSION}"])
def test_tfx_span_patterns_are_accepted(pattern):
    assert spans.input_config(pattern).splits[0].pattern == pattern


def test_no_pattern_is_the_whole_folder():
    assert spans.input_config("").splits[0].pattern == spans.WHOLE_FOLDER
    assert spans.relative_span_folder(spans.input_config("")) is None


@pytest.mark.parametrize("pattern", ["span-{SPAN}-{SPAN}", "{YYYY}-{MM}", "v{VERSION}"])
def test_malformed_span_patterns_are_refused_with_tfxs_reason(pattern):
    with pytest.raises(ValueError):
        spans.input_config(pattern)


def test_a_pattern_that_matches_no_folder_reads_the_whole_folder(tmp_path):
    _write(str(tmp_path / "real" / "a.mp4"))
    config = spans.input_config("span-{SPAN}")
    assert spans.without_spans_if_none_match(str(tmp_path), config).splits[0].pattern == spans.WHOLE_FOLDER
    os.makedirs(tmp_path / "span-1")
    assert spans.without_spans_if_none_match(str(tmp_path), config) == config


def test_the_fingerprint_changes_when_a_nested_video_is_added_removed_or_rewritten(tmp_path):
    video = str(tmp_path / "part_0" / "real" / "a.mp4")
    _write(video)
    first = spans.tree_fingerprint(str(tmp_path))
    assert spans.tree_fingerprint(str(tmp_path)) == first
    _write(str(tmp_path / "part_0" / "real" / "b.mp4"))
    added = spans.tree_fingerprint(str(tmp_path))
    assert added != first
    os.remove(str(tmp_path / "part_0" / "real" / "b.mp4"))
    os.utime(os.path.dirname(video), (1_000_000, 1_000_000))
    removed = spans.tree_fingerprint(str(tmp_path))
    assert removed != added
    _write(video, b"a longer video")
    assert spans.tree_fingerprint(str(tmp_path)) != removed
    os.utime(video, (2_000_000, 2_000_000))
    same_size = spans.tree_fingerprint(str(tmp_path))
    os.utime(video, (3_000_000, 3_000_000))
    assert spans.tree_fingerprint(str(tmp_path)) != same_size


def test_the_same_files_keep_their_version_and_changed_files_take_the_next():
    earlier = [("files A", 0), ("files B", 1)]
    assert spans.version_for("files A", earlier) == 0
    assert spans.version_for("files B", earlier) == 1
    assert spans.version_for("files C", earlier) == 2
    assert spans.version_for("files A", []) == 0
