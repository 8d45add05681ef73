"""Installs the deepfake detection project so Beam workers, runners and the detection service import the same code.

Extras split what each image carries:
- `.[serving]`: the detection service (face detection on ONNX Runtime, a gRPC
  client of TF Serving): no TensorFlow, TFX or Beam;
- `.[local]`: a serving install plus TensorFlow, for `deepfake-pipeline detect --local`;
- `.[edge]`: a serving install plus the TFLite runtime, for `detect --local --runtime tflite-*|onnx` and
  `live` on a model's edge exports, without TensorFlow;
- `.[pipeline]`: the whole project, the TFX pipeline and its runners (`serve`
  starts the local model server and the service);
- `.[test]`: everything the tests need.
Versions are pinned here and, for everything below, by constraints.txt."""

from setuptools import find_packages, setup

# The library's ingest, run by both the pipeline and the detection service.
LIBRARY = [
    "numpy<2",
    "protobuf==3.20.3",
    "mtcnn==1.0.0",
    "onnx==1.17.0",
    "onnxruntime==1.20.1",
    "opencv-python-headless==4.10.0.84",
]
SERVING = [
    "fastapi==0.162.5",
    "uvicorn==0.54.0",
    "python-multipart==0.0.32",
    "SQLAlchemy==2.0.58",
    "alembic==1.20.1",
    "psycopg[binary]==3.3.9",
    "prometheus_client==0.26.0",
    "grpcio==1.65.5",
    "httpx==0.28.1",
    "tqdm==4.70.1",
    # The operating point's fit and intervals (serving reads verdicts with them), the model card's pages,
    # and image headers read before decoding.
    "scipy==1.12.0",
    "Jinja2==3.1.6",
    "pillow==12.3.0",
    # uvicorn's WebSocket protocol (the /v1/live route) and `live --service`'s client.
    "websockets==16.1.1",
]
# The SavedModel in this process: `detect --local` and the local model server.
LOCAL = ["tensorflow==2.16.2", "tensorflow-serving-api==2.16.1"]
# Edge exports (issue 46): the TFLite runtime; ONNX Runtime is already in LIBRARY. `.[edge]` runs the exports
# (`detect --local --runtime tflite-int8|tflite-fp16|onnx`, `live`) without TensorFlow.
EDGE = ["ai-edge-litert==2.3.0"]
# Making the ONNX export from a SavedModel's function: tf2onnx 1.17.0 converts TF 2.16 / Keras 3 functions
# (measured: max |difference| from the SavedModel 1.5e-7 on a Meso-4), so the pipeline writes it.
EDGE_EXPORT = ["tf2onnx==1.17.0", *EDGE]
PIPELINE = [
    "tfx[kfp]==1.16.0",
    "apache-beam[gcp]==2.60.0",
    "google-crc32c==1.9.0",
    "scikit-image==0.25.2",
    "imageio-ffmpeg==0.8.1",
    *LOCAL,
    *EDGE_EXPORT,
]
TOOLS = ["pytest==9.2.0", "ruff==0.17.6", "playwright==1.65.2", "import-linter==2.15"]

setup(
    name="deepfake-pipeline",
    version="0.1.0",
    description="TFX pipeline for deepfake video detection: video ingest, validation, training, serving",
    python_requires=">=3.10,<3.11",
    packages=find_packages(
        include=[
            "deepfake_detection",
            "deepfake_detection.*",
            "pipeline",
            "pipeline.*",
            "components",
            "components.*",
            "serving",
            "serving.*",
            "schemas",
        ]
    ),
    py_modules=["pipeline_runner"],
    package_data={
        "schemas": ["*.pbtxt"],
        "serving.service": ["static/*", "migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
    },
    install_requires=LIBRARY,
    entry_points={"console_scripts": ["deepfake-pipeline=pipeline_runner:main"]},
    extras_require={
        "serving": SERVING,
        "local": SERVING + LOCAL,
        "edge": SERVING + EDGE,
        "pipeline": SERVING + PIPELINE,
        "test": SERVING + PIPELINE + TOOLS,
    },
)
