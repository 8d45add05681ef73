"""Videos to face crops: sampling, detection, tracks, the keep rule, examples and the per-video report.

Plain OpenCV, MTCNN and numpy: the VideoExampleGen component's Beam
transforms, the standalone ingest (`standalone.py`, a process pool, no Beam)
and the detection service all run it, and
the decode child of the service imports `sampling` without TensorFlow.
"""
