"""The curated data schemas, shipped with the package so Beam workers and runners find them."""

import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
FACE_SCHEMA_PATH = os.path.join(SCHEMA_DIR, "face_examples.pbtxt")
# The thresholds of drift between spans: a text DistributionValidatorConfig (TFX).
DRIFT_CONFIG_PATH = os.path.join(SCHEMA_DIR, "drift_config.pbtxt")
