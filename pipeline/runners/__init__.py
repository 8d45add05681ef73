"""Runners: one module per orchestrator, each binding paths, metadata and Beam arguments to `create_pipeline`.

`pipeline_runner.py` only dispatches to them: `ingest` (the per-video ingest
over a folder in a process pool, without TFX or Beam), `local` (the main job on
LocalDagRunner), `serve` (the model server on pushed models), `kubeflow`
(compile, submit, schedule); Apache Beam's arguments per runner are in
`beam_presets`, flags shared by several commands in `flags`.
"""

import os

# The checkout, and its outputs/ folder: artifacts, metadata, pushed models and serving configs.
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT_DIR = os.path.join(PROJECT_DIR, "outputs")
SERVING_MODELS_DIR = "serving_models"
