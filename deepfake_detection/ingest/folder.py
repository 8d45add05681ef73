"""The old name of `standalone` (the process-pool ingest, unrelated to the `folders` layout), kept so that
existing imports go on working."""

from deepfake_detection.ingest.standalone import CLIPS_DIR, ingest_folder, ingest_in_worker, split_file

__all__ = ["CLIPS_DIR", "ingest_folder", "ingest_in_worker", "split_file"]
