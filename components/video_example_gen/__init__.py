"""VideoExampleGen: videos in, face and clip tf.Examples plus an ingest report out.

The component is `component.VideoExampleGen`; the ingest logic beside it
(sampling, detection, tracks, examples) imports neither TFX nor Beam, so the
standalone ingest and the detection service load it without them.
"""
