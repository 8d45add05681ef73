"""The main job's summary shows each model's edge exports as checked, or why it has none."""

import os

from deepfake_detection.models import edge, export
from pipeline.runners.local import print_edge_exports


def test_the_summary_shows_the_latest_runs_edge_report_of_each_model(tmp_path, capsys):
    for execution, reason in ((3, "an older run"), (7, "a temporal model scores clips")):
        edge.write_not_made(
            str(tmp_path / "Trainer.resnext_lstm" / "model" / str(execution) / export.SERVING_DIR), reason
        )
    os.makedirs(tmp_path / "Trainer.meso4" / "model" / "2" / export.SERVING_DIR)  # exported before edge exports
    print_edge_exports(str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Edge exports of Trainer.resnext_lstm (only those marked pushed ship):"
    assert len(lines) == 4 and all("not made: a temporal model scores clips" in line for line in lines[1:])
