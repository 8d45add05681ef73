"""The library layer: the feature contract and constants, ingest logic, models, evaluation rules, warm-up records.

Arrows point one way: `components/` (TFX components and Beam transforms) and
`serving/` build on this package; this package imports neither of them, nor
TFX's orchestration (checked by the import contract in `pyproject.toml`,
`[tool.importlinter]`, which `lint-imports` reads). Beam and TFMA appear only in
the evaluation modules that TFMA loads in the Evaluator's workers (the video and
frame metrics, the EvalConfig, the run report); the contract says why.
"""
