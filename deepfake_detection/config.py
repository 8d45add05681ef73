"""The old home of the constants, kept so that `from deepfake_detection import config` goes on working.

They now live by what they are: `contract` (feature keys, splits, statuses, signatures), `component_ids`
(component ids, the pipeline's name, the code fingerprint's key) and `defaults` (the main job's and the
Kubeflow runs' defaults). New code imports those.
"""

from deepfake_detection.component_ids import *  # noqa: F403
from deepfake_detection.component_ids import model_of, node_id  # noqa: F401 - named for readers and linters
from deepfake_detection.contract import *  # noqa: F403
from deepfake_detection.defaults import *  # noqa: F403
