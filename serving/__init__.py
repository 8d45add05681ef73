"""Serving: TensorFlow Serving configuration, model server and clients."""
