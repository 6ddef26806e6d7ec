"""The real Rasa server for tests marked ``rasa``, started from the model that ``make rasa-train`` made.

The fixture does not train (that takes minutes): it fails with the command to run when the Rasa venv
or the model is missing, or when the model is older than the training data or the pipeline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RASA_VENV = Path(os.environ.get("RASA_VENV", REPO / ".rasa-venv"))
RASA_MODEL = Path(os.environ.get("RASA_MODEL", REPO / "var/rasa-models/gridbot-nlu.tar.gz"))
STARTUP_TIMEOUT_S = 240  # importing tensorflow and loading the model takes ~40 s on 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _newest_input() -> tuple[float, Path]:
    inputs = [REPO / "nlu/config.yml", *sorted((REPO / "nlu/data").glob("*.y*ml"))]
    return max((p.stat().st_mtime, p) for p in inputs if p.exists())


def _status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/status", timeout=2) as resp:
            return json.load(resp)
    except (OSError, urllib.error.URLError, ValueError):
        return None


@pytest.fixture(scope="session")
def rasa_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (RASA_VENV / "bin/rasa").exists():
        pytest.fail(f"{RASA_VENV}/bin/rasa is missing: run `make rasa-setup` (scripts/rasa-setup.sh) first")
    if not RASA_MODEL.exists():
        pytest.fail(f"Rasa model {RASA_MODEL} is missing: run `make rasa-train` (scripts/rasa-train.sh) first")
    newest, path = _newest_input()
    if RASA_MODEL.stat().st_mtime < newest:
        pytest.fail(f"Rasa model {RASA_MODEL} is older than {path.relative_to(REPO)}: run `make rasa-train`")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("rasa") / "rasa-serve.log"
    env = {**os.environ, "RASA_PORT": str(port), "RASA_HOST": "127.0.0.1", "RASA_MODEL": str(RASA_MODEL)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts/rasa-serve.sh")], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            status = _status(url)
            if status and status.get("model_file"):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"rasa server did not come up on {url} (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
