"""VideoExampleGen: videos in, face and clip tf.Examples plus an ingest report out.

`component.py` and `executor.py` are the TFX side, `transforms.py` the Beam
transforms the executor runs; the per-video ingest itself is in
`deepfake_detection.ingest` (`videos.ingest_video`), which the standalone
ingest (`deepfake_detection.ingest.standalone`) runs without Beam.
"""
