# The detection service's image: a slim Python with the library and serving/ installed as `.[serving]`:
# FastAPI, OpenCV, MTCNN on ONNX Runtime, a gRPC client of TF Serving. No TensorFlow, TFX or Beam. The
# command line (pipeline_runner.py, with the runners' parsers) comes along: `deepfake-pipeline service` starts it.
# Build from the repository root:  docker build -f infra/serving.Dockerfile -t deepfake-serving:0.1.0 .
# It runs as user 10001 on a read-only root filesystem: bytecode is compiled at build time, and the service
# writes only the decoder's temporary files (in /dev/shm, else /tmp, which Kubernetes mounts as an emptyDir).
FROM python:3.10.16-slim-bookworm AS build

WORKDIR /build
COPY constraints.txt setup.py pipeline_runner.py ./
COPY deepfake_detection/ deepfake_detection/
COPY pipeline/ pipeline/
COPY serving/ serving/

RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir -c constraints.txt ".[serving]" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM python:3.10.16-slim-bookworm

COPY --from=build /opt/venv /opt/venv
RUN groupadd --gid 10001 serving \
    && useradd --uid 10001 --gid serving --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin serving

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["deepfake-pipeline", "service"]
CMD ["--host=0.0.0.0", "--port=8080"]
