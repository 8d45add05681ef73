"""The detection service's monitoring (infra/k8s/monitoring): it renders with kustomize, the ConfigMap validates
against the Kubernetes schemas, the PrometheusRule has the Prometheus Operator's shape, and every metric the
alert rules and the Grafana dashboard query is one the service exports, with the labels they use."""

import json
import os
import re

import prometheus_client
import pytest
import yaml

from deepfake_detection.evaluation.drift import standard_histogram
from serving.service.admission import Admission
from serving.service.drift import DriftMonitor
from serving.service.metrics import Metrics
from tests.infra.test_infra import K8S, KUBERNETES_VERSION, run, tool

MONITORING = os.path.join(K8S, "monitoring")
DASHBOARD = os.path.join(MONITORING, "detection-service-dashboard.json")
# PromQL words that are not metric names.
PROMQL_WORDS = {"sum", "max", "by", "rate", "and", "ignoring", "histogram_quantile", "le", "on"}
# Labels Prometheus adds to every series of a scraped pod.
TARGET_LABELS = {"namespace", "pod", "instance", "job"}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def rule_file():
    with open(os.path.join(MONITORING, "prometheus-rule.yaml")) as f:
        return yaml.safe_load(f)


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def exported_metrics():
    """{series name: its labels} of everything the service's /metrics holds, drift gauges included."""
    metrics = Metrics()
    metrics.watch(Admission(1, 1))
    metrics.registry.register(DriftMonitor(lambda version: None, window_s=60))
    names = {}
    for family in metrics.registry.collect():
        labels = {"feature"} if family.name in ("detection_input_drift", "detection_input_drift_threshold") else set()
        labels |= {"route", "status"} if family.name.startswith("detection_request") else set()
        labels |= {"verdict"} if family.name == "detection_verdicts" else set()
        labels |= {"kind"} if family.name == "detection_errors" else set()
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def queried_metrics(expression):
    """The metric names a PromQL expression reads (identifiers outside strings, brackets and label lists)."""
    bare = re.sub(r"\[[^\]]*\]|\"[^\"]*\"|\{\{[^}]*\}\}", "", expression)
    return {word for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if word.startswith("detection_")}


def expressions():
    rules = [rule["expr"] for group in rule_file()["spec"]["groups"] for rule in group["rules"]]
    panels = [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]
    return rules + panels


def test_the_rule_has_the_operators_shape_and_alerts_on_drift():
    document = rule_file()
    assert document["apiVersion"] == "monitoring.coreos.com/v1" and document["kind"] == "PrometheusRule"
    rules = {rule["alert"]: rule for group in document["spec"]["groups"] for rule in group["rules"]}
    drift = rules["DetectionInputDrift"]
    assert queried_metrics(drift["expr"]) == {
        "detection_input_drift",
        "detection_input_drift_threshold",
        "detection_input_drift_faces",
    }
    for rule in rules.values():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"} and re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
        assert rule["expr"].count("(") == rule["expr"].count(")")


def test_every_queried_metric_is_exported_with_the_labels_used():
    exported = exported_metrics()
    for expression in expressions():
        for name in queried_metrics(expression):
            assert name in exported, f"{name} in {expression!r} is not a metric the service exports"
        for labels in re.findall(r"(?:by|ignoring|on) \(([^)]*)\)", expression):
            used = {label.strip() for label in labels.split(",")} - TARGET_LABELS
            assert any(used <= exported[name] for name in queried_metrics(expression)), expression


def test_the_drift_alert_fires_exactly_on_features_past_their_threshold():
    """The alert's condition evaluated on a scrape: drift past the threshold, on a window of enough faces."""
    faces = [{"brightness": 40.0 + i % 7, "face_size": 100 + i % 9} for i in range(300)]
    training = {
        "brightness": standard_histogram([120.0 + i % 11 for i in range(300)]),
        "face_size": standard_histogram([100 + i % 9 for i in range(300)]),
    }
    monitor = DriftMonitor(lambda version: training, window_s=60)
    monitor.observe(1, faces)
    registry = prometheus_client.CollectorRegistry()
    registry.register(monitor)
    value = registry.get_sample_value
    firing = {
        feature
        for feature in training
        if value("detection_input_drift", {"feature": feature})
        > value("detection_input_drift_threshold", {"feature": feature})
        and value("detection_input_drift_faces") >= 200
    }
    assert firing == {"brightness"}


def test_the_dashboard_shows_verdict_tiers_latency_queue_and_drift():
    panels = dashboard()["panels"]
    queried = [queried_metrics(" ".join(t["expr"] for t in panel["targets"])) for panel in panels]
    for needed in ("detection_verdicts_total", "detection_request_seconds_bucket", "detection_queue_depth"):
        assert any(needed in names for names in queried), needed
    assert any("detection_input_drift" in names for names in queried)
    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in panels)


@pytest.mark.infra
def test_the_monitoring_kustomization_renders_and_its_configmap_validates(tmp_path):
    result = run([tool("kubectl"), "kustomize", MONITORING])
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in documents) == ["ConfigMap", "PrometheusRule"]
    [config_map] = [d for d in documents if d["kind"] == "ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["detection-service-dashboard.json"]) == dashboard()
    (tmp_path / "configmap.yaml").write_text(yaml.safe_dump(config_map))
    validated = run(
        [tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", str(tmp_path / "configmap.yaml")]
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
