"""The library layer: the feature contract and constants, ingest logic, models, evaluation rules, warm-up records.

Arrows point one way: `components/` (TFX components and Beam transforms) and
`serving/` build on this package; this package imports neither of them, nor
TFX's orchestration (checked by the import contract in `.importlinter`).
"""
