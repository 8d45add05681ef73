"""The pipeline graph: `pipeline.create_pipeline`, the one factory of the TFX pipeline; runners bind it."""
