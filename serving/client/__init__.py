"""Clients: TF Serving's gRPC and REST clients (`tf_serving`), a SavedModel in this process (`local_model`), and
the command-line verbs that use them (`detect`, `keys`)."""
