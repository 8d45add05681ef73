"""Prometheus metrics of the local model server, named like TF Serving's own."""

import time
from contextlib import contextmanager
from typing import Iterator

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry()
REQUESTS = prometheus_client.Counter(
    ":tensorflow:serving:request_count",
    "Requests by model, API and outcome.",
    ["model_name", "api", "status"],
    registry=REGISTRY,
)
LATENCY = prometheus_client.Histogram(
    ":tensorflow:serving:request_latency",
    "Request latency in seconds by model and API.",
    ["model_name", "api"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@contextmanager
def observed(model_name: str, api: str) -> Iterator[None]:
    """Counts the request under its outcome (`OK` or the exception's name) and times it."""
    started = time.perf_counter()
    status = "OK"
    try:
        yield
    except Exception as e:
        status = type(e).__name__
        raise
    finally:
        REQUESTS.labels(model_name, api, status).inc()
        LATENCY.labels(model_name, api).observe(time.perf_counter() - started)


def exposition() -> bytes:
    return prometheus_client.generate_latest(REGISTRY)
