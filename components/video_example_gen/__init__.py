"""VideoExampleGen: videos in, face and clip tf.Examples plus an ingest report out.

`component.py` and `executor.py` are the TFX side, `transforms.py` the Beam
transforms the executor and the standalone ingest share; the ingest logic
itself is in `deepfake_detection.ingest`.
"""
