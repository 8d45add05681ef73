"""A local model server speaking TensorFlow Serving's REST and gRPC protocols, for machines without it."""
