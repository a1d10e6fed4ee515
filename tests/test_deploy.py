"""compose.yaml and the Dockerfile stay honest (no Docker engine runs here to start them)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian package) is installed by `make test`"
    return subprocess.run([compose, "-f", str(ROOT / "compose.yaml"), *args],
                          capture_output=True, text=True, timeout=60)


def test_compose_file_validates() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_pool_and_the_infrastructure() -> None:
    services = set(_compose("config", "--services").stdout.split())
    assert services >= {"redis", "minio", "minio-init", "gateway", "worker-cpu", "worker-ocr",
                        "worker-render", "worker-webhooks", "flower"}
    rendered = _compose("config").stdout
    for pool in ("cpu", "ocr", "render", "webhooks"):  # one image, different commands
        assert re.search(rf"- --pool\s*\n\s*- {pool}\b", rendered), pool
    assert rendered.count("init: true") >= 5 and "appendonly" in rendered
    assert "replicas: 2" in rendered


def test_dockerfile_copies_what_exists_and_installs_the_pools_needs() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+)", text, flags=re.MULTILINE):
        assert (ROOT / source).exists(), source
    for package in ("tesseract-ocr-chi-sim", "chromium", "fonts-noto-cjk"):
        assert package in text
