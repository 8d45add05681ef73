"""Defaults of the main job (`pipeline_runner.py local`) and of the Kubeflow runs, which the runners' flags and
the training recipe start from.

Why each value is what it is, with the runs that chose it: docs/experiments.md.
"""

from deepfake_detection import contract

# Kubeflow defaults: the image infra/Dockerfile builds, with this project under IMAGE_PROJECT_DIR.
PIPELINE_IMAGE = "deepfake-pipeline:0.1.0"
IMAGE_PROJECT_DIR = "/pipeline"
IMAGE_SCHEMA_PATH = IMAGE_PROJECT_DIR + "/schemas/face_examples.pbtxt"
KUBEFLOW_PIPELINE_ROOT = "gs://deepfake-pipeline/root"
KUBEFLOW_DATA_ROOT = "gs://deepfake-pipeline/videos"

# The main job: the residual blend detector at 128 px on self-blends of real faces, no ensemble (Meso-4 and
# MesoInception-4 stay at chance there); Kubeflow runs, with more data and accelerators, train both and their ensemble.
LOCAL_BACKBONES = ("blend_resnet",)
LOCAL_ENSEMBLE: tuple = ()
KUBEFLOW_BACKBONES = ("blend_resnet", "meso4")
LOCAL_INPUT_SIZE = 128
LOCAL_SAMPLE_VIDEOS = 128
# The main job trains at the backbone's own learning rate for 20 epochs, without the Tuner: trials of one epoch
# compare noise and picked a worse learning rate. `--tuner-trials N` tunes; Kubeflow runs tune by default.
LOCAL_EPOCHS = 20
LOCAL_TUNER_TRIALS = 0
KUBEFLOW_TUNER_TRIALS = 2
LOCAL_TUNING_EPOCHS = 1
# With self-blended training the test split holds only unseen generators: the bounds ask for a margin over chance
# (BlessingConfig's own default stays 0.7 for models judged on the fakes they trained on).
LOCAL_MIN_AUC = 0.55
LOCAL_MIN_UNSEEN_AUC = 0.6
# Self-blended validation pairs every eval face with its pseudo-fake, so val AUC is steady: stop after 4 flat epochs.
LOCAL_EARLY_STOPPING_PATIENCE = 4
# Training keeps an exponential moving average of every weight (about the last 330 steps, 2 main-job epochs),
# which validation scores and the Trainer exports; 0 keeps the raw weights. It smooths validation and helped
# within the seeds' spread.
EMA_MOMENTUM = 0.997
# `local --quality`: longer training for users with time: the pseudo-fake task was still being learned when the
# main job's early stopping ended.
QUALITY_EPOCHS = 40
QUALITY_EARLY_STOPPING_PATIENCE = 8
LOCAL_SPLIT_BUCKETS = {"train": 6, "eval": 2, "test": 2}
# The main job trains without a single fake video: every sample manipulation stays unseen until the test.
LOCAL_FAKE_SOURCE = contract.FAKE_SOURCE_SELF_BLENDED
# The locator (where a face looks pasted over, `models/locator.py`) trains after each self-blended face model for
# up to this many epochs (0: none, and the `explain` map falls back to the classifier's input gradient).
LOCATOR_EPOCHS = 12

# Continuous training (docs/continuous-training.md): the data root's span folders, as a TFX split pattern (`{SPAN}`,
# or `{YYYY}-{MM}-{DD}`; a folder where none matches is one span); the spans training and evaluation read (the
# newest N); what drift between the newest span and the previous one does: `warn` (the run summary says it) or
# `block` (the run stops before training).
SPAN_PATTERN = "span-{SPAN}"
TRAIN_SPANS = 4
ON_DRIFT = contract.ON_DRIFT_WARN
# Each Trainer starts from the latest blessed model of its backbone when the architecture matches (warm start,
# `models/warm_start.py`) and then trains this many epochs (its locator too, at most its own epochs); a fresh start
# trains the whole recipe. Measured against fresh starts in docs/warm-start.md.
WARM_START_EPOCHS = 5
