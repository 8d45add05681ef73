"""The curated data schemas, shipped with the package so Beam workers and runners find them."""

import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
FACE_SCHEMA_PATH = os.path.join(SCHEMA_DIR, "face_examples.pbtxt")
