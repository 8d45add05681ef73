"""The detection service's Prometheus metrics: requests by route template, latencies, verdicts, errors, and the
admission queue read when scraped. Labels are bounded: a route's template, never a raw path."""

import time
from typing import TYPE_CHECKING, Any, Callable, Tuple

import prometheus_client

from serving.service.admission import Admission

if TYPE_CHECKING:
    from serving.service.served_model import ModelServerCircuit
    from serving.service.spool import Recorder

# The metrics label of every path no route matches: one label, however many distinct paths clients try.
UNMATCHED_ROUTE = "unmatched"


class Metrics:
    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.requests = prometheus_client.Counter(
            "detection_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = prometheus_client.Histogram(
            "detection_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.verdicts = prometheus_client.Counter(
            "detection_verdicts", "Files analysed, by verdict", ["verdict"], registry=self.registry
        )
        self.errors = prometheus_client.Counter(
            "detection_errors", "Files refused or failed, by kind", ["kind"], registry=self.registry
        )
        self.jobs_taken_over = prometheus_client.Counter(
            "detection_jobs_taken_over",
            "Jobs whose replica died, taken over here: resumed, or failed (their files gone)",
            ["outcome"],
            registry=self.registry,
        )

    def watch(self, admission: Admission) -> None:
        """Queue depth, analyses in flight and refusals, read from the admission control when scraped."""
        self._read_when_scraped(
            ("detection_queue_depth", "Admitted requests waiting for a slot", lambda: admission.queued),
            ("detection_in_flight", "Requests being analysed", lambda: admission.in_flight),
            ("detection_rejected", "Requests refused with 503 because the queue was full", lambda: admission.rejected),
        )

    def watch_faults(self, recorder: "Recorder", circuit: "ModelServerCircuit") -> None:
        """The history's state and spool, and the model server's circuit, read when scraped."""
        self._read_when_scraped(
            (
                "detection_history_up",
                "1 while the history database takes checks, 0 while they are spooled",
                lambda: 0 if recorder.degraded else 1,
            ),
            ("detection_history_spooled", "Checks waiting in the spool for the database", lambda: len(recorder.spool)),
            ("detection_history_dropped", "Checks dropped because the spool was full", lambda: recorder.dropped),
            (
                "detection_model_server_circuit_open",
                "1 while uploads are refused: the model server does not answer",
                lambda: 1 if circuit.is_open else 0,
            ),
        )

    def _read_when_scraped(self, *gauges: Tuple[str, str, Callable[[], float]]) -> None:
        for name, text, read in gauges:
            prometheus_client.Gauge(name, text, registry=self.registry).set_function(read)


def route_label(scope: dict) -> str:
    """The metrics label of a request: the template of the route that matched (`/v1/jobs/{job_id}`), or one
    label for every path nothing matched, so that clients cannot add labels (and memory) by inventing paths."""
    route = scope.get("route")
    if route is None and "app_root_path" in scope:  # a mounted app (the static files): its prefix
        return f"{scope['root_path']}/{{path}}"
    return getattr(route, "path", None) or UNMATCHED_ROUTE


class RequestMetrics:
    """Counts and times every HTTP request by route template and status (a plain ASGI middleware: it sees
    the route the router chose, and a request that ends in an exception is counted as a 500)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, counted = [500], [False]

        def count() -> None:
            counted[0] = True
            route = route_label(scope)
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

        async def observed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                count()  # before the client can see the end of the answer, and scrape the metrics next
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if not counted[0]:
                count()
