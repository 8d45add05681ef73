"""Installs the deepfake detection pipeline so Beam workers and runners import the same code."""

from setuptools import find_packages, setup

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
        "serving": ["static/*", "migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
    },
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.60.0",
        "mtcnn==1.0.0",
        "onnx==1.17.0",
        "onnxruntime==1.20.1",
        "google-crc32c==1.9.0",
        "opencv-python-headless==4.10.0.84",
        "scikit-image==0.25.2",
        "imageio-ffmpeg==0.8.1",
        "numpy<2",
        "fastapi==0.162.5",
        "uvicorn==0.54.0",
        "python-multipart==0.0.32",
        "SQLAlchemy==2.0.58",
        "alembic==1.20.1",
        "psycopg[binary]==3.3.9",
    ],
    entry_points={"console_scripts": ["deepfake-pipeline=serving.cli:main"]},
    extras_require={"test": ["pytest==9.2.0", "ruff==0.17.6", "playwright==1.65.2", "import-linter==2.15"]},
)
