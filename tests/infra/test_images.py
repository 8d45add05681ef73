"""What each image holds, checked without Docker: its build context is laid out as the Dockerfile's COPY and ADD
lines (and .dockerignore) say, in a temporary folder, and every project module is imported from that folder
alone, with only the third-party packages the Dockerfile's `pip install ".[extras]"` brings (the others are
refused at import, as they would be missing in the image); then the image's entry points start.

A module the COPY lines leave out fails here with ModuleNotFoundError, not in the cluster.
"""

import dataclasses
import fnmatch
import importlib.metadata
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from typing import Dict, List, Set, Tuple
from unittest import mock

import pytest
import setuptools
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT_PACKAGES = ("deepfake_detection", "pipeline", "components", "serving", "schemas")
# Not imported as modules: a package's own file, and `python -m package`'s, which runs the program.
ENTRY_FILES = ("__init__.py", "__main__.py")
# Stacks that the detection service's image must go without.
HEAVY = {"tensorflow", "tfx", "apache-beam", "keras", "tensorflow-serving-api", "kfp", "ml-pipelines-sdk"}


@dataclasses.dataclass(frozen=True)
class Image:
    dockerfile: str
    # argv after `python`, each run from the image's folder; it must exit 0.
    entry_points: Tuple[Tuple[str, ...], ...]
    # Project modules that must import in the image; None: every module of every package it holds.
    required: Tuple[str, ...] = ()


IMAGES = (
    Image(
        "infra/Dockerfile",
        (
            ("pipeline_runner.py", "--help"),
            ("pipeline_runner.py", "compile", "--help"),
            ("-m", "pipeline_runner", "service", "--help"),
        ),
        required=None,
    ),
    Image(
        "infra/serving.Dockerfile",
        (("-m", "pipeline_runner", "service", "--help"), ("-m", "pipeline_runner", "detect", "--help")),
        required=(
            "pipeline_runner",
            "serving.service.detection_service",
            "serving.service.decode_worker",
            "serving.client.cli",
            "serving.service.history",
        ),
    ),
)


def setup_arguments() -> dict:
    """The keyword arguments setup.py passes to setup(), read by running it with setup() replaced."""
    with mock.patch.object(setuptools, "setup") as setup:
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            runpy.run_path(os.path.join(ROOT, "setup.py"))
        finally:
            os.chdir(cwd)
    return setup.call_args.kwargs


def requirement_closure(requirements: List[str]) -> Set[str]:
    """The distributions (canonical names) that installing `requirements` brings, read from this environment's
    installed metadata (it holds every pinned version: make install puts `.[test]` in)."""
    found: Set[str] = set()
    pending = [(Requirement(r), "") for r in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        key_extras = [f"{name}[{e}]" for e in extras]
        if name in found and all(k in found for k in key_extras):
            continue
        found.add(name)
        found.update(key_extras)
        distribution = importlib.metadata.distribution(requirement.name)
        for text in distribution.requires or []:
            for wanted in {""} | extras:
                pending.append((Requirement(text), wanted))
    return {name for name in found if "[" not in name}


def extras_of(dockerfile_text: str) -> List[str]:
    """The extras of the project's own install in the Dockerfile: `pip install ... ".[a,b]"`."""
    [extras] = re.findall(r"""pip install [^\n]*?["']?\.\[([a-z,]+)\]""", dockerfile_text)
    return extras.split(",")


def installed_files(distributions: Set[str]) -> List[str]:
    """The absolute paths of every file that `distributions` installed here."""
    paths = []
    for distribution in importlib.metadata.distributions():
        if canonicalize_name(distribution.metadata["Name"]) in distributions:
            paths += [os.path.realpath(distribution.locate_file(f)) for f in distribution.files or []]
    return paths


def _instructions(text: str) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def _ignored(relative: str, patterns: List[str]) -> bool:
    """.dockerignore's rule: a pattern excludes the path it matches and all below it; `**/` matches any depth."""
    parts = relative.split("/")
    for pattern in patterns:
        if pattern.startswith("**/"):
            spans = ("/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
            if any(fnmatch.fnmatch(span, pattern[3:]) for span in spans):
                return True
        elif any(fnmatch.fnmatch("/".join(parts[:j]), pattern) for j in range(1, len(parts) + 1)):
            return True
    return False


def lay_out_context(dockerfile: str, folder: str) -> str:
    """Copies into `folder` what the Dockerfile's COPY/ADD lines take from the build context, each under its
    stage's WORKDIR; returns that WORKDIR's folder, where the project is installed from. (A `COPY --from` takes
    what another stage built from these files.)"""
    ignore = []
    if os.path.exists(os.path.join(ROOT, ".dockerignore")):
        lines = open(os.path.join(ROOT, ".dockerignore")).read().splitlines()
        ignore = [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]
    workdir, workdirs = "/", set()
    for instruction, arguments in _instructions(open(os.path.join(ROOT, dockerfile)).read()):
        if instruction == "FROM":
            workdir = "/"
        elif instruction == "WORKDIR":
            workdir = os.path.join(workdir, arguments.strip())
        elif instruction in ("COPY", "ADD"):
            words = json.loads(arguments) if arguments.lstrip().startswith("[") else shlex.split(arguments)
            if any(w.startswith("--from") for w in words):
                continue
            *sources, destination = [w for w in words if not w.startswith("--")]
            workdirs.add(workdir)
            target = os.path.join(folder, os.path.join(workdir, destination).lstrip("/"))
            for source in sources:
                _copy(source, target, destination.endswith("/") or len(sources) > 1, ignore)
    assert len(workdirs) == 1, f"{dockerfile} copies from the build context into {workdirs or 'nothing'}"
    return os.path.join(folder, workdirs.pop().lstrip("/"))


def _copy(source: str, target: str, into_folder: bool, ignore: List[str]) -> None:
    """Docker's COPY: a folder's contents into the target folder; a file into it, or as the target's name."""
    path = os.path.join(ROOT, source)
    assert os.path.exists(path), f"COPY {source}: no such file in the build context"
    if os.path.isdir(path):
        for current, names, files in os.walk(path):
            names[:] = [n for n in names if not _ignored(os.path.relpath(os.path.join(current, n), ROOT), ignore)]
            for name in files:
                if not _ignored(os.path.relpath(os.path.join(current, name), ROOT), ignore):
                    destination = os.path.join(target, os.path.relpath(os.path.join(current, name), path))
                    os.makedirs(os.path.dirname(destination), exist_ok=True)
                    shutil.copy2(os.path.join(current, name), destination)
    elif not _ignored(os.path.normpath(source), ignore):
        destination = os.path.join(target, os.path.basename(source)) if into_folder else target
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copy2(path, destination)


def project_modules(folder: str) -> List[str]:
    """Every module of the project packages under `folder`, and its top-level modules (pipeline_runner)."""
    modules = []
    for package in PROJECT_PACKAGES:
        for current, names, files in os.walk(os.path.join(folder, package)):
            names[:] = sorted(n for n in names if os.path.exists(os.path.join(current, n, "__init__.py")))
            if not os.path.exists(os.path.join(current, "__init__.py")):
                continue
            dotted = os.path.relpath(current, folder).replace(os.sep, ".")
            modules.append(dotted)
            modules += [f"{dotted}.{f[:-3]}" for f in sorted(files) if f.endswith(".py") and f not in ENTRY_FILES]
    modules += [f[:-3] for f in sorted(os.listdir(folder)) if f.endswith(".py") and f != "setup.py"]
    return modules


# Runs in the emulated image (python -I: no PYTHONPATH, no user site, not the current folder): the folder first on
# sys.path, the checkout's editable install disabled, and any third-party module whose file no distribution of
# the image installed refused, as it would be missing there.
PRELUDE = r"""
import importlib.abc, importlib.machinery, json, os, sys
FOLDER = os.path.realpath(os.getcwd())
with open(os.environ["IMAGE_FILES"]) as f:
    ALLOWED = set(json.load(f))
SITE = [os.path.realpath(p) for p in sys.path if p.endswith("site-packages")]
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
sys.path[:] = [FOLDER] + [p for p in sys.path if not os.path.exists(os.path.join(p, "setup.py"))]

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        origin = spec and spec.origin and os.path.realpath(spec.origin)
        if origin and any(origin.startswith(s + os.sep) for s in SITE) and origin not in ALLOWED:
            raise ModuleNotFoundError(f"No module named {name!r} in this image", name=name)
        return None

sys.meta_path.insert(0, NotInImage())

def check_origins():
    project = {"deepfake_detection", "pipeline", "components", "serving", "schemas", "pipeline_runner"}
    for name, module in list(sys.modules.items()):
        location = getattr(module, "__file__", None)
        if name.split(".")[0] in project and location:
            assert os.path.realpath(location).startswith(FOLDER + os.sep), f"{name} came from {location}"
"""

IMPORT_ALL = r"""
import importlib, traceback
results = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
        results[name] = None
    except BaseException as e:
        results[name] = [type(e).__name__, getattr(e, "name", None), str(e)[-500:]]
check_origins()
print("RESULTS " + json.dumps(results))
"""

ENTRY_POINT = r"""
import runpy
argv = json.loads(sys.argv[1])
if argv[0] == "-m":
    sys.argv = [argv[1]] + argv[2:]
    run = lambda: runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = argv
    run = lambda: runpy.run_path(os.path.join(FOLDER, argv[0]), run_name="__main__")
try:
    run()
except SystemExit as e:
    check_origins()
    raise
check_origins()
"""


def _run_in_image(folder: str, files: str, code: str, argument: list) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")
    }
    environment.update(IMAGE_FILES=files, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-I", "-c", PRELUDE + code, json.dumps(argument)],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module", params=IMAGES, ids=lambda image: image.dockerfile)
def image(request, tmp_path_factory) -> Dict:
    spec: Image = request.param
    folder = lay_out_context(spec.dockerfile, str(tmp_path_factory.mktemp("context")))
    extras = extras_of(open(os.path.join(ROOT, spec.dockerfile)).read())
    arguments = setup_arguments()
    requirements = list(arguments["install_requires"])
    for extra in extras:
        requirements += arguments["extras_require"][extra]
    distributions = requirement_closure(requirements)
    files = os.path.join(str(tmp_path_factory.mktemp("files")), "allowed.json")
    with open(files, "w") as f:
        json.dump(installed_files(distributions), f)
    return {"spec": spec, "folder": folder, "distributions": distributions, "files": files, "setup": arguments}


def test_every_dockerfile_is_emulated_here():
    dockerfiles = {os.path.join("infra", f) for f in os.listdir(os.path.join(ROOT, "infra")) if "Dockerfile" in f}
    assert dockerfiles == {image.dockerfile for image in IMAGES}


def test_the_image_holds_and_imports_its_modules(image):
    spec, folder = image["spec"], image["folder"]
    modules = project_modules(folder)
    if spec.required is None:
        declared = [p for p in image["setup"]["packages"] if "." not in p] + image["setup"]["py_modules"]
        missing = [m for m in declared if m not in modules]
        assert not missing, f"{spec.dockerfile} leaves out what setup.py installs: {missing}"
    else:
        assert set(spec.required) <= set(modules), set(spec.required) - set(modules)
    result = _run_in_image(folder, image["files"], IMPORT_ALL, modules)
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("RESULTS ")]
    failures = {name: error for name, error in json.loads(line[len("RESULTS ") :]).items() if error}
    required = modules if spec.required is None else spec.required
    assert not {m: failures[m] for m in required if m in failures}, f"{spec.dockerfile}: {failures}"
    for name, (kind, missing, message) in failures.items():
        assert kind == "ModuleNotFoundError", f"{name}: {kind}: {message}"
        assert missing and missing.split(".")[0] not in PROJECT_PACKAGES, f"{name} misses project module {missing}"
        assert "in this image" in message, f"{name}: {message}: a package the image's extras should bring"


def test_the_image_starts_its_entry_points(image):
    for argv in image["spec"].entry_points:
        result = _run_in_image(image["folder"], image["files"], ENTRY_POINT, list(argv))
        assert result.returncode == 0, f"python {' '.join(argv)}:\n{result.stderr[-3000:]}"
        assert "usage:" in result.stdout


def test_the_serving_image_installs_no_tensorflow_tfx_or_beam(image):
    heavy = image["distributions"] & HEAVY
    if image["spec"].dockerfile == "infra/serving.Dockerfile":
        assert not heavy, heavy
    else:
        assert {"tfx", "tensorflow", "apache-beam"} <= heavy


def test_the_extras_split_the_stacks():
    arguments = setup_arguments()
    extras = arguments["extras_require"]

    def closure(extra):
        return requirement_closure(arguments["install_requires"] + extras[extra])

    assert not closure("serving") & HEAVY, "the detection service installs without TensorFlow, TFX or Beam"
    local = closure("local")
    assert {"tensorflow", "tensorflow-serving-api"} <= local and not local & {"tfx", "apache-beam", "kfp"}
    assert {"tfx", "apache-beam", "tensorflow", "fastapi"} <= closure("pipeline")
    assert set(extras["serving"]) | set(extras["pipeline"]) <= set(extras["test"]), "make install's .[test]"
