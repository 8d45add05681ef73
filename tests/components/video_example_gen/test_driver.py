"""VideoExampleGen's driver on a real ML Metadata store: TFX's span resolution over a folder that grows, and a
new version whenever a span's files change."""

import os

import pytest
from tfx.components.example_gen import utils as example_gen_utils
from tfx.orchestration import metadata
from tfx.types import standard_artifacts

from components.video_example_gen import driver, spans


def _video(folder, name="a.mp4", content=b"video"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(content)


@pytest.fixture
def store(tmp_path):
    return metadata.Metadata(metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.sqlite")))


def _resolve(store, input_base, pattern="span-{SPAN}"):
    properties = {"input_base": input_base, "input_config": spans.input_config_json(pattern)}
    resolved = driver.Driver(store).resolve_exec_properties(properties, None, None)
    folder = spans.relative_span_folder(spans.parse_input_config(resolved["input_config"]))
    return resolved["span"], resolved["version"], folder, resolved["input_fingerprint"]


def _publish(store, input_base, span, version, fingerprint):
    """An ingest's published examples, as the executor leaves them."""
    examples = standard_artifacts.Examples()
    examples.uri = f"/tmp/examples/{span}/{version}"
    examples.span, examples.version = span, version
    for key, value in (("span", span), ("version", version)):
        examples.set_int_custom_property(key, value)
    examples.set_string_custom_property("input_fingerprint", fingerprint)
    examples.set_string_custom_property("input_base", input_base)
    examples.mlmd_artifact.state = examples.mlmd_artifact.LIVE
    with store as m:
        m.publish_artifacts([examples])


def test_the_newest_span_of_a_growing_folder_is_resolved(tmp_path, store):
    root = str(tmp_path / "data")
    _video(os.path.join(root, "span-1", "real"))
    assert _resolve(store, root)[:3] == (1, 0, "span-1")
    _video(os.path.join(root, "span-2", "real"))
    _video(os.path.join(root, "span-10", "fake"))
    assert _resolve(store, root)[:3] == (10, 0, "span-10")


def test_dated_spans_and_tfx_versions_are_resolved(tmp_path, store):
    root = str(tmp_path / "data")
    _video(os.path.join(root, "2026-11-30", "real"))
    _video(os.path.join(root, "2026-12-06", "real"))
    span, _, folder, _ = _resolve(store, root, "{YYYY}-{MM}-{DD}")
    assert (span, folder) == (example_gen_utils.date_to_span_number(2026, 12, 6), "2026-12-06")
    _video(os.path.join(root, "span-1", "v1", "real"))
    _video(os.path.join(root, "span-1", "v2", "real"))
    assert _resolve(store, root, "span-{SPAN}/v{VERSION}")[:3] == (1, 2, os.path.join("span-1", "v2"))


def test_a_folder_without_spans_is_span_zero(tmp_path, store):
    root = str(tmp_path / "data")
    _video(os.path.join(root, "real"))
    assert _resolve(store, root)[:3] == (0, 0, None)


def test_a_span_whose_files_change_gets_the_next_version_and_unchanged_files_keep_theirs(tmp_path, store):
    root = str(tmp_path / "data")
    _video(os.path.join(root, "span-1", "part_0", "real"))
    span, version, _, fingerprint = _resolve(store, root)
    _publish(store, root, span, version, fingerprint)
    assert _resolve(store, root)[1:] == (0, "span-1", fingerprint)
    _video(os.path.join(root, "span-1", "part_0", "real"), "b.mp4")
    span, version, _, changed = _resolve(store, root)
    assert (version, changed != fingerprint) == (1, True)
    _publish(store, root, span, version, changed)
    _publish(store, str(tmp_path / "another_root"), span, 5, "other files")
    os.remove(os.path.join(root, "span-1", "part_0", "real", "b.mp4"))
    os.utime(os.path.join(root, "span-1", "part_0", "real"), (1_000_000, 1_000_000))
    assert _resolve(store, root)[1] == 2
