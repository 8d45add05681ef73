"""The standalone `pipeline_runner.py ingest` command: files, report and summary line."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import pipeline_runner
from deepfake_detection import contract, defaults
from deepfake_detection.ingest.readers import read_dataset
from tests.helpers import BROKEN_FILE_LIMITS, make_broken_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_ingest_command_accounts_for_every_file(sample_dataset, tmp_path):
    data = tmp_path / "data"
    expected = make_broken_files(str(data / "fake"), sorted(r.path for r in read_dataset(sample_dataset))[0])
    shutil.copy(sorted(r.path for r in read_dataset(sample_dataset))[1], data / "fake" / "good.mp4")
    output = tmp_path / "out"
    limits = [f"--{k.replace('_', '-')}={v}" for k, v in BROKEN_FILE_LIMITS.items()]
    result = subprocess.run(
        [
            sys.executable,
            "pipeline_runner.py",
            "ingest",
            "--data-root",
            str(data),
            "--output-dir",
            str(output),
            "--frames-per-video",
            "4",
            "--image-size",
            "64",
            *limits,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in open(output / contract.REPORT_FILE_NAME)]
    assert sorted(row["video"] for row in rows) == sorted(f"fake/{name}" for name in list(expected) + ["good.mp4"])
    for row in rows:
        assert set(row) >= {"video", "status", "reason", "frames_sampled", "faces"}
    assert f"[ingest] {len(rows)}/{len(rows)}" in result.stderr
    n_unreadable = sum(1 for s in expected.values() if s == "unreadable")
    n_rejected = sum(1 for s in expected.values() if s == "rejected")
    assert f"ok 1, no_face 1, unreadable {n_unreadable}, rejected {n_rejected}" in result.stdout
    assert {p.name for p in output.iterdir()} >= {"Split-train", "Split-eval", "Split-test", "clips"}


def test_ingest_command_names_an_unknown_layout(tmp_path):
    os.makedirs(tmp_path / "videos")
    result = subprocess.run(
        [
            sys.executable,
            "pipeline_runner.py",
            "ingest",
            "--data-root",
            str(tmp_path),
            "--output-dir",
            str(tmp_path / "o"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Cannot tell the dataset layout" in result.stderr


class _FactoryCalledError(Exception):
    pass


def _settings_of(monkeypatch, argv):
    """The PipelineSettings a command hands the pipeline factory (which is stopped there)."""
    bound = {}

    def create_pipeline(**kwargs):
        bound.update(kwargs)
        raise _FactoryCalledError

    monkeypatch.setattr("pipeline.pipeline.create_pipeline", create_pipeline)
    with pytest.raises(_FactoryCalledError):
        pipeline_runner.main(argv)
    return bound["settings"]


@pytest.mark.parametrize(
    "command, flags, expected",
    [
        ("compile", [], None),
        ("compile", ["--min-unseen-auc", "0.65"], 0.65),
        ("local", [], defaults.LOCAL_MIN_UNSEEN_AUC),
        ("local", ["--min-unseen-auc", "0.65"], 0.65),
        ("local", ["--fake-source", "dataset"], None),
        ("local", ["--fake-source", "both", "--held-out", "self_warp"], defaults.LOCAL_MIN_UNSEEN_AUC),
    ],
)
def test_min_unseen_auc_flag_feeds_the_blessing(monkeypatch, tmp_path, command, flags, expected):
    """The main job bounds unseen kinds by default whenever training leaves some unseen."""
    where = ["--data-root", str(tmp_path), "--output-dir", str(tmp_path / "out")] if command == "local" else []
    settings = _settings_of(monkeypatch, [command, *where, *flags])
    assert settings.blessing.min_unseen_video_auc == expected
    default_ensemble = list(defaults.KUBEFLOW_BACKBONES) if command == "compile" else list(defaults.LOCAL_ENSEMBLE)
    assert list(settings.ensemble_members) == default_ensemble
    if command == "local" and "--held-out" in flags:
        assert settings.training_settings["*"]["held_out_manipulations"] == ["self_warp"]


@pytest.mark.parametrize(
    "flags, epochs, patience",
    [
        ([], defaults.LOCAL_EPOCHS, defaults.LOCAL_EARLY_STOPPING_PATIENCE),
        (["--epochs", "3", "--patience", "2"], 3, 2),
        (["--quality"], defaults.QUALITY_EPOCHS, defaults.QUALITY_EARLY_STOPPING_PATIENCE),
        (["--quality", "--epochs", "60"], 60, defaults.QUALITY_EARLY_STOPPING_PATIENCE),
    ],
)
def test_the_quality_preset_trains_longer(monkeypatch, tmp_path, flags, epochs, patience):
    argv = ["local", "--data-root", str(tmp_path), "--output-dir", str(tmp_path / "out"), *flags]
    training = _settings_of(monkeypatch, argv).training_settings["*"]
    assert (training["epochs"], training["early_stopping_patience"]) == (epochs, patience)


@pytest.mark.parametrize(
    "command, flags, warm",
    [
        ("local", [], True),
        ("local", ["--no-warm-start"], False),
        ("compile", [], 1),
        ("compile", ["--no-warm-start"], 0),
    ],
)
def test_no_warm_start_makes_every_trainer_start_fresh(monkeypatch, tmp_path, command, flags, warm):
    """Locally a training setting; on Kubeflow the default of the `warm_start` runtime parameter."""
    where = ["--data-root", str(tmp_path), "--output-dir", str(tmp_path / "out")] if command == "local" else []
    settings = _settings_of(monkeypatch, [command, *where, *flags])
    if command == "local":
        training = settings.training_settings["*"]
        assert (training["warm_start"], training["warm_start_epochs"]) == (warm, defaults.WARM_START_EPOCHS)
    else:
        assert (settings.warm_start.name, settings.warm_start.default) == ("warm_start", warm)


def test_the_main_job_binds_a_code_version_that_changes_with_the_code(monkeypatch, tmp_path):
    from pipeline.runners import local

    argv = ["local", "--data-root", str(tmp_path), "--output-dir", str(tmp_path / "out")]
    assert _settings_of(monkeypatch, argv).code_version == local.code_fingerprint()
    package = tmp_path / "package"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "model.py").write_text("LAYERS = 3\n")
    (package / "notes.txt").write_text("not code")
    before = local.code_fingerprint([str(package)])
    (package / "notes.txt").write_text("still not code")
    assert local.code_fingerprint([str(package)]) == before
    (package / "sub" / "model.py").write_text("LAYERS = 4\n")
    assert local.code_fingerprint([str(package)]) != before
