"""The detection service (`deepfake-pipeline service`): upload a video or image, get a verdict.

`detection_service` wires the app; beside it, by job: its flags and settings, the routes, the analysis of an
upload and the background jobs, admission, API keys, the history database and its migrations, uploads, media
decoding in an isolated worker, metrics and the web page (`static/`). It runs without TensorFlow.
"""
