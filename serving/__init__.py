"""Serving, one folder per program: `model_server/` (a drop-in TensorFlow Serving for pushed SavedModels),
`service/` (the detection service), `client/` (TF Serving clients and the `detect` and `keys` verbs), and
`protocol/` (the messages they share)."""
