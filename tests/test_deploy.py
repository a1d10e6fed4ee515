"""compose.yaml and the Dockerfiles, checked as files: these run on any machine, with or
without a Docker engine (tests/test_stack.py starts the stack where one can run)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy import stack

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "FLEET_S3_ACCESS_KEY": "fleet-test",
    "FLEET_S3_SECRET_KEY": "a/b#c?d%e",
    "FLOWER_BASIC_AUTH": "admin:secret",
}


def _compose(
    tmp_path: Path,
    *args: str,
    values: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (Debian package) is not installed")
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in (values or {}).items()))
    return stack.compose("deploytest", env_file, *args, check=False, isolate=True, timeout=60)


def _yaml(text: str) -> dict:
    """YAML read by docker-compose's own interpreter (Debian's package brings PyYAML with it;
    the project's venv need not)."""
    compose = shutil.which("docker-compose")
    assert compose is not None
    shebang = Path(compose).read_text(errors="replace").splitlines()[0]
    python = shebang[2:].strip().split()[0] if shebang.startswith("#!") else "python3"
    converted = subprocess.run(
        [python, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(converted.stdout)


@pytest.fixture
def rendered(tmp_path: Path) -> dict:
    result = _compose(tmp_path, "config", values=SECRETS)
    assert result.returncode == 0, result.stderr
    return _yaml(result.stdout)


def test_every_service_is_built_here_from_a_local_dockerfile(rendered: dict) -> None:
    services = rendered["services"]
    assert set(services) >= {
        "redis",
        "seaweedfs",
        "storage-init",
        "gateway",
        "lb",
        "worker-cpu",
        "worker-ocr",
        "worker-render",
        "worker-webhooks",
        "worker-payments",
        "sweeper",
        "flower",
    }
    for name, service in services.items():
        assert "build" in service, f"{name} would be pulled from a registry"
        assert service["image"].startswith("imagefleet"), (name, service["image"])
        assert service["build"].get("network") == "host", name
        dockerfile = Path(service["build"]["context"]) / service["build"].get(
            "dockerfile", "Dockerfile"
        )
        text = dockerfile.read_text()
        assert re.search(r"^FROM debian:bookworm-slim\b", text, re.MULTILINE), dockerfile
        assert service.get("init") is True, name


def test_one_image_runs_every_pool_and_the_gateway_replicas(rendered: dict) -> None:
    services = rendered["services"]
    for pool in ("cpu", "ocr", "render", "webhooks", "payments"):
        assert services[f"worker-{pool}"]["command"][-2:] == ["--pool", pool]
        assert services[f"worker-{pool}"]["image"] == services["gateway"]["image"]
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert "ports" not in services["gateway"]  # only through the load balancer


def test_only_the_load_balancer_flower_and_s3_are_published_and_on_loopback(rendered: dict) -> None:
    published = {
        name: service["ports"]
        for name, service in rendered["services"].items()
        if service.get("ports")
    }
    assert set(published) == {"lb", "flower", "seaweedfs"}  # S3: signed download links
    for ports in published.values():
        for port in ports:  # "127.0.0.1:8080:8080" (compose 1.29) or the long form (v2)
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", port
    assert rendered["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:secret"


def test_credentials_travel_apart_and_have_no_default(tmp_path: Path, rendered: dict) -> None:
    env = rendered["services"]["gateway"]["environment"]
    assert env["FLEET_STORAGE_URL"] == "s3://seaweedfs:8333/imagefleet"  # no keys in the URL
    # Download links are signed for the S3 port published on loopback.
    assert env["FLEET_S3_PUBLIC_URL"] == "http://127.0.0.1:8333"
    assert env["FLEET_S3_SECRET_KEY"] == SECRETS["FLEET_S3_SECRET_KEY"]  # / # ? % as they are
    refused = _compose(tmp_path, "config", "-q", values={})
    assert refused.returncode != 0
    assert "FLEET_S3_ACCESS_KEY" in refused.stderr or "FLEET_S3_SECRET_KEY" in refused.stderr


def test_redis_is_durable_and_reachable_from_the_stack(rendered: dict) -> None:
    command = rendered["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "always"
    assert command[command.index("--protected-mode") + 1] == "no"
    gateway_check = " ".join(rendered["services"]["gateway"]["healthcheck"]["test"])
    assert "/healthz" in gateway_check  # which fails when the gateway's Redis does
    assert "option httpchk GET /healthz" in (ROOT / "deploy/haproxy.cfg").read_text()


def test_seaweedfs_runs_with_telemetry_off() -> None:
    start = (ROOT / "deploy/seaweedfs-start.sh").read_text()
    assert "-master.telemetry=false" in start
    assert "-master.telemetry=false" in (ROOT / "tests/fleet_harness.py").read_text()


def test_dockerfiles_copy_what_exists_and_install_the_pools_needs() -> None:
    for image in stack.IMAGES:
        text = (ROOT / image.dockerfile).read_text()
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE):
            for source in line.split()[:-1]:
                assert (ROOT / image.context / source).exists(), (image.dockerfile, source)
    fleet = (ROOT / "Dockerfile").read_text()
    for package in ("tesseract-ocr-chi-sim", "tesseract-ocr-osd", "chromium", "fonts-noto-cjk"):
        assert package in fleet
    ignored = (ROOT / ".dockerignore").read_text()
    assert "!deploy/ca" in ignored  # the build-time CA bundle reaches the build stage ...
    assert "COPY --from=build /opt/imagefleet" in fleet  # ... and only the venv leaves it


def test_image_inputs_hash_follows_the_copied_files(tmp_path: Path) -> None:
    image = stack.IMAGES[0]
    first = image.inputs_hash()
    assert first == image.inputs_hash()
    probe = ROOT / "storage" / "__pycache__" / "probe.pyc"  # ignored: not an input
    probe.parent.mkdir(exist_ok=True)
    try:
        probe.write_bytes(b"x")
        assert image.inputs_hash() == first
    finally:
        probe.unlink()
