"""The detection service's Prometheus metrics: requests by route template, latencies, verdicts, errors, and the
admission queue read when scraped. Labels are bounded: a route's template, never a raw path."""

import time
from typing import Any

import prometheus_client

from serving.service.admission import Admission

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

    def watch(self, admission: Admission) -> None:
        """Queue depth, analyses in flight and refusals, read from the admission control when scraped."""
        for name, text, read in (
            ("detection_queue_depth", "Admitted requests waiting for a slot", lambda: admission.queued),
            ("detection_in_flight", "Requests being analysed", lambda: admission.in_flight),
            ("detection_rejected", "Requests refused with 503 because the queue was full", lambda: admission.rejected),
        ):
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
