"""The one pipeline factory: the graph of the deepfake detection pipeline.

No file or environment reads happen here; runners bind paths, metadata and
Beam arguments and pass them in.
"""

from typing import List, Optional, Union

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.orchestration import data_types

from components.anomaly_gate import AnomalyGate
from components.video_example_gen import IngestConfig, VideoExampleGen
from components.video_example_gen.readers import LAYOUT_AUTO


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: Union[str, data_types.RuntimeParameter],
    schema_path: str,
    ingest_config: Optional[IngestConfig] = None,
    layout: str = LAYOUT_AUTO,
    beam_pipeline_args: Optional[List[str]] = None,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Videos -> face examples -> statistics -> validation against the curated schema -> gate.

    The gate fails the run on any anomaly, naming the feature, so nothing
    downstream ever consumes examples that break the schema.
    """
    example_gen = VideoExampleGen(input_base=data_root, layout=layout, ingest_config=ingest_config)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, schema_gen, statistics_gen, example_validator, anomaly_gate],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
