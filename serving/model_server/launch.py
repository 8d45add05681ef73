"""Starts a model server on a models.config: the real `tensorflow_model_server` when it is on PATH,
else the local one with the same flags."""

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable, List, Optional

TF_SERVING_BINARY = "tensorflow_model_server"


def model_server_command(
    models_config: str,
    grpc_port: int,
    rest_port: int,
    monitoring_config: Optional[str] = None,
    batching_parameters: Optional[str] = None,
    poll_seconds: float = 1.0,
    host: Optional[str] = None,
) -> List[str]:
    """TF Serving's command line; batching applies to the real binary only (the local server runs each request).

    `host` is the address the local server's two ports listen on (its own
    default is loopback); the real binary listens on every address.
    """
    binary = shutil.which(TF_SERVING_BINARY)
    base = [binary] if binary else [sys.executable, "-m", "serving.model_server"]
    command = base + [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={models_config}",
        f"--file_system_poll_wait_seconds={max(1, round(poll_seconds)) if binary else poll_seconds}",
    ]
    if monitoring_config:
        command.append(f"--monitoring_config_file={monitoring_config}")
    if host and not binary:
        command.append(f"--host={host}")
    if binary and batching_parameters:
        command += ["--enable_batching=true", f"--batching_parameters_file={batching_parameters}"]
    return command


def wait_for_http(
    url: str, process: subprocess.Popen, ready: Callable[[bytes], bool], timeout_s: float = 120.0
) -> None:
    """Polls `url` until `ready(body)` holds; raises if `process` exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0] if process.args else 'the server'} exited with code {process.returncode}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if ready(response.read()):
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} was not ready within {timeout_s:.0f}s")


def wait_until_available(rest_url: str, model_name: str, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Waits for the model's status to say AVAILABLE."""
    wait_for_http(f"{rest_url}/v1/models/{model_name}", process, lambda body: b"AVAILABLE" in body, timeout_s)
