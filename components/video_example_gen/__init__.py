"""VideoExampleGen: videos in, face and clip tf.Examples plus an ingest report out."""

from components.video_example_gen.component import IngestReport, VideoExampleGen
from components.video_example_gen.ingest_config import IngestConfig

__all__ = ["IngestConfig", "IngestReport", "VideoExampleGen"]
