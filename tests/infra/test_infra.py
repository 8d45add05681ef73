"""The cluster deployment, checked offline: every overlay renders with kustomize and validates against the
Kubernetes schemas, the Dockerfile passes hadolint, checkov fails nothing (each skip carries a reason), and
the manifests hold what the serving design needs.

The tools come from `.venv-infra` (make install / make test set it up).
"""

import json
import os
import re
import subprocess

import pytest
import yaml

from deepfake_detection import defaults
from serving.model_server import model_config

pytestmark = pytest.mark.infra

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, ".venv-infra", "bin")
K8S = os.path.join(ROOT, "infra", "k8s")
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.30.0"
MODELS = ("meso4", "mesoinception4", "ensemble")
MODEL_BASE_PATHS = {"dev": "/models", "prod": "gs://deepfake-pipeline/root/serving_models"}


def tool(name):
    path = os.path.join(TOOLS, name)
    assert os.path.exists(path), f"{path} is missing: run `make install` (it sets up .venv-infra)"
    return path


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, **kwargs)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rendered")
    documents = {}
    for overlay in OVERLAYS:
        result = run([tool("kubectl"), "kustomize", os.path.join(K8S, "overlays", overlay)])
        assert result.returncode == 0, result.stderr
        (folder / f"{overlay}.yaml").write_text(result.stdout)
        documents[overlay] = [d for d in yaml.safe_load_all(result.stdout) if d]
    return folder, documents


def _find(documents, kind, name):
    [found] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    return found


def test_every_overlay_validates_against_the_kubernetes_schemas(rendered):
    folder, documents = rendered
    for overlay in OVERLAYS:
        result = run(
            [tool("kubernetes-validate"), "-k", KUBERNETES_VERSION, "--strict", str(folder / f"{overlay}.yaml")]
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count("passed for resource") == len(documents[overlay])


DOCKERFILES = ("infra/Dockerfile", "infra/serving.Dockerfile")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile):
    result = run([tool("hadolint"), dockerfile])
    assert result.returncode == 0, result.stdout + result.stderr


def _checkov(*args):
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = run([tool("checkov"), "--skip-download", "-o", "json", *args], env=environment)
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def test_checkov_fails_nothing_and_every_skip_has_a_reason(rendered):
    folder, _ = rendered
    reports = _checkov("-d", str(folder), "--framework", "kubernetes")
    for dockerfile in DOCKERFILES:
        reports += _checkov("-f", dockerfile, "--framework", "dockerfile")
    for report in reports:
        results = report["results"]
        failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
        assert not failed, failed
        assert report["summary"]["passed"] > 0 and report["summary"]["failed"] == 0, report["summary"]
        for skipped in results["skipped_checks"]:
            reason = skipped["check_result"].get("suppress_comment", "")
            assert reason.strip(), f"{skipped['check_id']} is skipped without a reason"


def test_tf_serving_runs_on_one_gpu_with_config_from_the_configmap(rendered):
    _, documents = rendered
    for overlay in OVERLAYS:
        deployment = _find(documents[overlay], "Deployment", "tf-serving")
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "tensorflow/serving:2.16.1-gpu"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert "--per_process_gpu_memory_fraction=0.8" in container["args"]
        assert "--model_config_file=/config/models.config" in container["args"]
        assert container["readinessProbe"]["httpGet"]["path"].startswith("/v1/models/")
        configmap = _find(documents[overlay], "ConfigMap", "tf-serving-config")
        assert set(configmap["data"]) == {"models.config", "batching_parameters.txt", "monitoring.config"}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
        service = _find(documents[overlay], "Service", "tf-serving")
        assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}


def test_models_config_of_each_overlay_is_the_generators_output(tmp_path):
    for overlay in OVERLAYS:
        models = [model_config.ServingModel(m, f"{MODEL_BASE_PATHS[overlay]}/{m}") for m in MODELS]
        written = model_config.write_serving_configs(str(tmp_path / overlay), models)
        committed = open(os.path.join(K8S, "overlays", overlay, model_config.MODELS_CONFIG_FILE)).read()
        assert committed == open(written[model_config.MODELS_CONFIG_FILE]).read(), (
            f"regenerate {overlay}'s models.config"
        )
    monitoring = open(os.path.join(K8S, "base", model_config.MONITORING_FILE)).read()
    assert model_config.prometheus_path(monitoring) == model_config.PROMETHEUS_PATH


def test_only_the_detection_service_reaches_tf_serving(rendered):
    _, documents = rendered
    for overlay in OVERLAYS:
        policy = _find(documents[overlay], "NetworkPolicy", "tf-serving")
        rules = policy["spec"]["ingress"]
        pods = [rule for rule in rules if "podSelector" in rule["from"][0]]
        assert [rule["from"][0]["podSelector"]["matchLabels"] for rule in pods] == [{"app": "detection-service"}]
        others = [rule for rule in rules if rule not in pods]
        assert all({p["port"] for p in rule["ports"]} == {8501} for rule in others), "only metrics scraping besides"


def test_every_container_is_non_root_with_requests_and_limits(rendered):
    _, documents = rendered
    for overlay in OVERLAYS:
        for deployment in (d for d in documents[overlay] if d["kind"] in ("Deployment", "StatefulSet")):
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            for container in pod["containers"]:
                assert {"cpu", "memory"} <= set(container["resources"]["requests"])
                assert {"cpu", "memory"} <= set(container["resources"]["limits"])
                assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_prod_reads_models_from_object_storage_and_dev_from_a_volume(rendered):
    _, documents = rendered
    prod = _find(documents["prod"], "ConfigMap", "tf-serving-config")["data"]["models.config"]
    assert 'base_path: "gs://deepfake-pipeline/root/serving_models/ensemble"' in prod
    dev = _find(documents["dev"], "Deployment", "tf-serving")["spec"]["template"]["spec"]
    assert {
        "name": "serving-models",
        "persistentVolumeClaim": {"claimName": "serving-models", "readOnly": True},
    } in dev["volumes"]
    assert _find(documents["dev"], "PersistentVolumeClaim", "serving-models")


def test_every_replica_of_the_detection_service_shares_one_postgresql_history(rendered):
    _, documents = rendered
    for overlay in OVERLAYS:
        deployment = _find(documents[overlay], "Deployment", "detection-service")
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert "--history-url-file=/etc/history-db/url" in container["args"]
        assert not any("sqlite" in arg for arg in container["args"])
        [secret] = [v["secret"] for v in pod["volumes"] if "secret" in v]
        assert secret["secretName"] == "detection-history-db"
        assert not any("emptyDir" in v and v["name"] != "tmp" for v in pod["volumes"]), "no state on a pod's disk"
    assert _find(documents["prod"], "Deployment", "detection-service")["spec"]["replicas"] == 3
    assert not [d for d in documents["prod"] if d["kind"] == "StatefulSet"], "prod uses a managed database"


def test_dev_runs_postgresql_as_a_statefulset_only_the_detection_service_reaches(rendered):
    _, documents = rendered
    database = _find(documents["dev"], "StatefulSet", "history-db")
    assert database["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    [container] = database["spec"]["template"]["spec"]["containers"]
    environment = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        environment["POSTGRES_PASSWORD_FILE"].startswith("/etc/history-db/") and "POSTGRES_PASSWORD" not in environment
    )
    policy = _find(documents["dev"], "NetworkPolicy", "history-db")
    assert policy["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"app": "detection-service"}}}], "ports": [{"port": 5432}]}
    ]
    assert _find(documents["dev"], "Service", "history-db")["spec"]["clusterIP"] == "None"


def test_the_detection_service_needs_keys_and_is_reached_from_outside_only_through_the_tls_ingress(rendered):
    _, documents = rendered
    for overlay in OVERLAYS:
        [container] = _find(documents[overlay], "Deployment", "detection-service")["spec"]["template"]["spec"][
            "containers"
        ]
        assert "--auth=keys" in container["args"] and "--allow-unauthenticated-remote" not in container["args"]
        ingress = _find(documents[overlay], "Ingress", "detection-service")["spec"]
        [tls] = ingress["tls"]
        assert tls["secretName"] and {rule["host"] for rule in ingress["rules"]} == set(tls["hosts"])
        paths = {p["path"]: p["pathType"] for rule in ingress["rules"] for p in rule["http"]["paths"]}
        assert paths == {"/v1": "Prefix", "/static": "Prefix", "/": "Exact"}, "no health, readiness or metrics"
        policy = _find(documents[overlay], "NetworkPolicy", "detection-service")["spec"]
        sources = [rule["from"][0]["namespaceSelector"]["matchLabels"] for rule in policy["ingress"]]
        assert sources == [
            {"kubernetes.io/metadata.name": "ingress-nginx"},
            {"kubernetes.io/metadata.name": "monitoring"},
        ], "HTTP only from the ingress controller and Prometheus"
        assert [{p["port"] for p in rule["ports"]} for rule in policy["ingress"]] == [{8080}, {9090}]
        assert "--metrics-port=9090" in container["args"]


def _egress_ports(documents, app):
    """Every port the pods of `app` may send to, by the policies that select them."""
    ports = set()
    for policy in (d for d in documents if d["kind"] == "NetworkPolicy"):
        labels = policy["spec"]["podSelector"].get("matchLabels", {})
        if labels in ({}, {"app": app}):
            ports |= {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}
    return ports


def test_every_pod_is_denied_by_default_and_sends_only_where_it_must(rendered):
    _, documents = rendered
    for overlay in OVERLAYS:
        deny = _find(documents[overlay], "NetworkPolicy", "default-deny")["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert _egress_ports(documents[overlay], "detection-service") == {53, 8500, 5432}
        assert _egress_ports(documents[overlay], "history-db") == {53}
    assert _egress_ports(documents["dev"], "tf-serving") == {53}, "dev reads models from a volume"
    assert _egress_ports(documents["prod"], "tf-serving") == {53, 443, 80, 988}, "prod: object storage only"


def test_the_detection_service_runs_the_serving_image_and_kubeflow_the_pipeline_image(rendered):
    _, documents = rendered
    built = {}
    for dockerfile in DOCKERFILES:
        [tag] = re.findall(r"docker build -f \S+ -t (\S+) \.", open(os.path.join(ROOT, dockerfile)).read())
        built[dockerfile] = tag
    assert defaults.PIPELINE_IMAGE == built["infra/Dockerfile"]
    serving_name, serving_tag = built["infra/serving.Dockerfile"].split(":")
    for overlay in OVERLAYS:
        [container] = _find(documents[overlay], "Deployment", "detection-service")["spec"]["template"]["spec"][
            "containers"
        ]
        assert container["image"] == f"registry.example.com/deepfake/{serving_name}:{serving_tag}"
