"""Constants shared by the pipeline, its components, the schema and serving.

Every string key (feature names, split names, statuses) is defined once here so
that the ingest, the curated schema, the trainer and the clients cannot drift.
"""

PIPELINE_NAME = "deepfake-detection"

# Component ids of one model's branch are "<kind>.<model name>", built and read only here.
TUNER = "Tuner"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
MODEL_CARD = "ModelCard"
BASELINE_RESOLVER = "LatestBlessedModel"


def node_id(kind: str, model_name: str) -> str:
    return f"{kind}.{model_name}"


def model_of(component_id: str) -> str:
    """The model name in a branch component's id (`Evaluator.meso4` -> `meso4`)."""
    kind, dot, name = component_id.partition(".")
    if not dot or not name:
        raise ValueError(f"{component_id!r} is not a per-model component id (<kind>.<model>)")
    return name


# Kubeflow defaults: the image infra/Dockerfile builds, with this project under IMAGE_PROJECT_DIR.
PIPELINE_IMAGE = "deepfake-pipeline:0.1.0"
IMAGE_PROJECT_DIR = "/pipeline"
IMAGE_SCHEMA_PATH = IMAGE_PROJECT_DIR + "/schemas/face_examples.pbtxt"
KUBEFLOW_PIPELINE_ROOT = "gs://deepfake-pipeline/root"
KUBEFLOW_DATA_ROOT = "gs://deepfake-pipeline/videos"

# The main job's defaults: the residual blend detector at 128 px, trained on self-blends of real faces. Meso-4
# and MesoInception-4 stayed at chance on self-blends within the main job's CPU epochs (measured), so the main
# job trains no ensemble; Kubeflow runs, with more data and accelerators, default to both and their ensemble.
LOCAL_BACKBONES = ("blend_resnet",)
LOCAL_ENSEMBLE: tuple = ()
KUBEFLOW_BACKBONES = ("blend_resnet", "meso4")
LOCAL_INPUT_SIZE = 128
LOCAL_SAMPLE_VIDEOS = 128
# The main job trains at the backbone's own learning rate for 20 epochs, without the Tuner: trials of one epoch
# compare noise, and on the same ingest (seed 0) two such trials picked a learning rate of 1.2e-4 whose model
# reached eval AUC 0.68 and unseen video AUC 0.56 in 10 epochs, where 1e-3 for 20 epochs reached 0.78 and 0.62
# (blessed). `--tuner-trials N` tunes; Kubeflow runs tune by default.
LOCAL_EPOCHS = 20
LOCAL_TUNER_TRIALS = 0
KUBEFLOW_TUNER_TRIALS = 2
LOCAL_TUNING_EPOCHS = 1
# With self-blended training the test split holds only unseen generators, where published cross-dataset
# detectors score far below their in-dataset figures: the bounds ask for a margin over chance at frame and
# video level (BlessingConfig's own default stays 0.7 for models judged on the fakes they trained on).
LOCAL_MIN_AUC = 0.55
LOCAL_MIN_UNSEEN_AUC = 0.6
# Self-blended validation pairs every eval face with its pseudo-fake, so val AUC is steady: stop after 4 flat epochs.
LOCAL_EARLY_STOPPING_PATIENCE = 4
# Training keeps an exponential moving average of every weight (about the last 330 steps, 2 main-job epochs),
# which validation scores and the Trainer exports; 0 keeps the raw weights. Main job, seed 0: eval AUC 0.839
# against 0.808, held-out sample videos 0.729 against 0.639; over three seeds 0.658 against 0.639 (README).
EMA_MOMENTUM = 0.997
# `local --quality`: longer training for users with time. Unseen-kind video AUC roughly follows how well the
# pseudo-fake task is learned (eval AUC), which was still rising when the main job's early stopping ended.
QUALITY_EPOCHS = 40
QUALITY_EARLY_STOPPING_PATIENCE = 8
LOCAL_SPLIT_BUCKETS = {"train": 6, "eval": 2, "test": 2}

# A fingerprint of the code the custom components run, in their properties (local runs): TFX's cache keys
# on properties and inputs, not on code, and would otherwise reuse a Trainer's model after its code changed.
CODE_VERSION_KEY = "code_version"

# Feature keys of a face example (one face crop of one sampled frame).
IMAGE_KEY = "image"
LABEL_KEY = "label"
VIDEO_ID_KEY = "video_id"
SOURCE_ID_KEY = "source_id"
DATASET_KEY = "dataset"
MANIPULATION_KEY = "manipulation"
COMPRESSION_KEY = "compression"
FRAME_INDEX_KEY = "frame_index"
TIMESTAMP_KEY = "timestamp"
FACE_CONFIDENCE_KEY = "face_confidence"
FACE_BOX_KEY = "face_box"
FACE_SIZE_KEY = "face_size"
TRACK_ID_KEY = "track_id"
FACE_SIZE_BUCKET_KEY = "face_size_bucket"
# MTCNN's five keypoints (left eye, right eye, nose, left and right mouth corner) as x0, y0, ..., x4, y4,
# in the stored crop's coordinates scaled to [0, 1], so they hold at any decode size.
FACE_LANDMARKS_KEY = "face_landmarks"
NUM_LANDMARKS = 5

# Face-size buckets for sliced evaluation: the face box's shorter side, in source pixels.
FACE_SIZE_BUCKETS = ((64, "under_64"), (128, "64_to_127"), (256, "128_to_255"), (None, "256_and_over"))

# Extra feature keys of a clip example (T consecutive crops of one face track).
CLIP_FRAMES_KEY = "frames"
CLIP_FRAME_INDICES_KEY = "frame_indices"
CLIP_LENGTH_KEY = "clip_length"

# Where the Trainer's fakes come from: the dataset's labelled fakes, self-blended images made on the fly
# from real faces only (SBI), or both.
FAKE_SOURCE_DATASET = "dataset"
FAKE_SOURCE_SELF_BLENDED = "self_blended"
FAKE_SOURCE_BOTH = "both"
FAKE_SOURCES = (FAKE_SOURCE_DATASET, FAKE_SOURCE_SELF_BLENDED, FAKE_SOURCE_BOTH)
# Stands for every fake kind in a list of manipulations (what a model trained without dataset fakes never saw).
ALL_MANIPULATIONS = "*"
# What a backbone trains on unless its settings say otherwise (TrainingConfig, and the evaluation's unseen kinds).
DEFAULT_FAKE_SOURCE = FAKE_SOURCE_SELF_BLENDED
# The main job trains without a single fake video: every sample manipulation stays unseen until the test.
LOCAL_FAKE_SOURCE = FAKE_SOURCE_SELF_BLENDED

FAKE_LABEL = 1
REAL_LABEL = 0
ORIGINAL_MANIPULATION = "original"
UNKNOWN = "unknown"

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
TEST_SPLIT = "test"
SPLIT_NAMES = (TRAIN_SPLIT, EVAL_SPLIT, TEST_SPLIT)
# Training watches `eval` (early stopping, checkpoints, ensemble weights); models are judged on `test`.
EVALUATION_SPLIT = TEST_SPLIT
DEFAULT_SPLIT_BUCKETS = {TRAIN_SPLIT: 8, EVAL_SPLIT: 1, TEST_SPLIT: 1}

# Class counts of the eval split written beside a trained model's metrics, so
# an AUC over one class is reported as undefined, not as Keras's 0.0.
EVAL_REAL_EXAMPLES = "eval_real_examples"
EVAL_FAKE_EXAMPLES = "eval_fake_examples"

# Final status of every input video in the ingest report.
STATUS_OK = "ok"
STATUS_NO_FACE = "no_face"
STATUS_UNREADABLE = "unreadable"
STATUS_REJECTED = "rejected"
STATUSES = (STATUS_OK, STATUS_NO_FACE, STATUS_UNREADABLE, STATUS_REJECTED)
# The standalone ingest stops a video still running after this long (a hung decoder) and reports it unreadable;
# a minute of 1080p with 32 sampled frames takes about half a minute on one core.
VIDEO_TIMEOUT_S = 600.0

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpeg", ".mpg", ".m4v")

# Signatures and tensor names of every exported model, shared by the export, evaluator and clients.
SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
IMAGES_INPUT = "images"
CLIPS_INPUT = "clips"
EXAMPLES_INPUT = "examples"
OUTPUT_KEY = "fake_probability"
# Face models also answer `explain`: `images` -> `fake_probability` and a map per face (models.explain).
EXPLAIN_SIGNATURE = "explain"
HEATMAP_KEY = "heatmap"

REPORT_FILE_NAME = "ingest_report.jsonl"
EXAMPLES_FILE_PREFIX = "data_tfrecord"
