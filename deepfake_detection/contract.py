"""The feature and artifact contract shared by the ingest, the curated schema, the trainer, evaluation and serving.

Every string key (feature names, split names, statuses, signature and tensor names) is defined once here so
that the ingest, the schema, the trainer and the clients cannot drift.
"""

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
# The span (TFX's: one delivery of videos, a folder of the data root) an example was ingested from; the forgetting
# guard slices the evaluation by it.
SPAN_FEATURE = "span"
# What a face's input looks like apart from its label (ingest.input_description), compared span by span for drift.
BRIGHTNESS_KEY = "brightness"
CONTRAST_KEY = "contrast"
SHARPNESS_KEY = "sharpness"
BLOCKINESS_KEY = "blockiness"
FRAME_WIDTH_KEY = "frame_width"
FRAME_HEIGHT_KEY = "frame_height"
FRAME_RATE_KEY = "frame_rate"
CODEC_KEY = "codec"

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
# Faces were detected, but every track is one the person rule rejects (not face-shaped): not the same as none.
STATUS_NO_PERSON = "no_person"
STATUSES = (STATUS_OK, STATUS_NO_FACE, STATUS_UNREADABLE, STATUS_REJECTED, STATUS_NO_PERSON)
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

# Every backbone's name: the names the pipeline can push a model under (beside the ensemble). Listed here, apart
# from `models.registry`, so that the detection service can name them without importing Keras; a test checks
# that the registry holds exactly these.
BACKBONE_NAMES = (
    "blend_resnet",
    "compact_cnn",
    "densenet121",
    "efficientnet_v2m",
    "fusion",
    "meso4",
    "mesoinception4",
    "resnet50",
    "resnext_lstm",
    "xception",
)

# Edge exports of a face model (issue 46): a folder beside the SavedModel's files, pushed with it, holding one
# file per runtime that passed its check, the input contract they share and the check's report.
EDGE_DIR = "edge"
EDGE_CONTRACT_FILE = "input_contract.json"
EDGE_REPORT_FILE = "edge_report.json"
RUNTIME_SAVEDMODEL = "savedmodel"
RUNTIME_TFLITE_FP16 = "tflite-fp16"
RUNTIME_TFLITE_INT8 = "tflite-int8"
RUNTIME_ONNX = "onnx"
EDGE_FILES = {
    RUNTIME_TFLITE_FP16: "model_fp16.tflite",
    RUNTIME_TFLITE_INT8: "model_int8.tflite",
    RUNTIME_ONNX: "model.onnx",
}
RUNTIMES = (RUNTIME_SAVEDMODEL, *EDGE_FILES)
# TF Serving's folder for a version's extra files (warm-up requests, operating point, model card).
ASSETS_EXTRA_DIR = "assets.extra"

# What drift between the newest span and the previous one does (`--on-drift`): the run summary says it (`warn`), or
# the run stops before training (`block`).
ON_DRIFT_WARN = "warn"
ON_DRIFT_BLOCK = "block"
ON_DRIFT_CHOICES = (ON_DRIFT_WARN, ON_DRIFT_BLOCK)
