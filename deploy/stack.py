#!/usr/bin/env python3
"""The compose stack on this machine's Docker engine: `make stack` and `make stack-down`.

    python3 deploy/stack.py up      # engine, base image, images, .env, the stack, /readyz
    python3 deploy/stack.py down    # the stack's containers, networks, volumes; our engine
    python3 deploy/stack.py base    # only the debian:bookworm-slim base image
    python3 deploy/stack.py build   # only the images (reused when their inputs are unchanged)

Standard library only: it runs before any venv exists. It stops only what it started: the
Docker daemon by the pid it wrote to var/stack/dockerd.pid. tests/stack_harness.py drives
the same functions under a project name of its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "var" / "stack"
DAEMON_PID = STATE / "dockerd.pid"
ENV_FILE = ROOT / ".env"
COMPOSE_FILE = ROOT / "compose.yaml"
PROJECT = "imagefleet"
BASE_IMAGE = "debian:bookworm-slim"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
HASH_LABEL = "org.imagefleet.inputs"

Say = Callable[[str], None]


def say(text: str) -> None:
    print(f"stack: {text}", flush=True)


def run(argv: list[str], check: bool = True, capture: bool = True, timeout: float | None = None,
        **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, text=True, timeout=timeout,  # type: ignore[call-overload]
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None, **kw)


# --- the engine --------------------------------------------------------------------------

def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return run(["docker", "info"], check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def why_no_engine() -> str | None:
    """None when a Docker engine answers or this process can start one; else why not."""
    if engine_answers():
        return None
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        return "no Docker engine: the docker.io package (docker, dockerd) is not installed"
    if os.geteuid() != 0:
        return "no Docker engine answers and starting dockerd needs root"
    return None


def _alive(pid: int) -> bool:
    """Running, not a zombie (this machine's PID 1 does not reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def start_engine(log_file: Path, pid_file: Path | None, sayer: Say = say) -> int | None:
    """Start dockerd (root, no iptables: containers reach only each other and the host) when
    none answers; its pid (also written to pid_file), or None when one already answered."""
    if engine_answers():
        return None
    reason = why_no_engine()
    if reason:
        raise RuntimeError(reason)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sayer(f"no Docker engine answers; starting dockerd (log: {log_file})")
    with open(log_file, "ab") as log:
        child = subprocess.Popen(["dockerd", "--iptables=false", "--ip6tables=false"],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{child.pid}\n")
    deadline = time.monotonic() + 90
    while not engine_answers():
        if child.poll() is not None or time.monotonic() > deadline:
            stop_engine(child.pid)
            if pid_file is not None:
                pid_file.unlink(missing_ok=True)
            raise RuntimeError(f"dockerd did not come up; see {log_file}")
        time.sleep(0.5)
    return child.pid


def foreign_containers(projects: Iterable[str] = ()) -> list[str]:
    """Containers on the engine that are not of the given compose projects."""
    mine = set(projects)
    out = run(["docker", "ps", "-a", "--format",
               '{{.Names}}\t{{.Label "com.docker.compose.project"}}'], check=False).stdout
    return [line.split("\t")[0] for line in out.splitlines()
            if line.strip() and line.split("\t")[-1] not in mine]


def stop_engine(pid: int, sayer: Say = say) -> bool:
    """SIGTERM the dockerd we started (and only that pid); False if it was already gone."""
    if not _alive(pid) or "dockerd" not in _cmdline(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    if _alive(pid):
        sayer(f"dockerd {pid} ignored SIGTERM for 60 s; SIGKILL")
        os.kill(pid, signal.SIGKILL)
    return True


# --- the base image ----------------------------------------------------------------------

_SLIM_DPKG = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
_CLEAN = ('"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb'
          ' /var/cache/apt/*.bin || true"')
_APT_CLEAN = (f"DPkg::Post-Invoke {{ {_CLEAN}; }};\nAPT::Update::Post-Invoke {{ {_CLEAN}; }};\n"
              'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n')
_SOURCES = """\
Types: deb
URIs: {mirror}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def image_exists(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], check=False).returncode == 0


def ensure_base(sayer: Say = say) -> str:
    """debian:bookworm-slim: present, pulled, or (no registry answers) made with debootstrap
    from the Debian mirror and imported under the same tag. Says which."""
    if not engine_answers():
        raise RuntimeError("no Docker engine answers (`make stack` starts one)")
    if image_exists(BASE_IMAGE):
        return "present"
    pull = run(["docker", "pull", BASE_IMAGE], check=False, timeout=600)
    if pull.returncode == 0:
        sayer(f"pulled {BASE_IMAGE}")
        return "pulled"
    sayer(f"{BASE_IMAGE} cannot be pulled ({pull.stderr.strip().splitlines()[-1:]});"
          f" building it with debootstrap from {DEBIAN_MIRROR}")
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="imagefleet-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        boot = run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
                   check=False, timeout=1200)
        if boot.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{boot.stdout[-2000:]}{boot.stderr[-2000:]}")
        _slim(rootfs)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],
                               stdout=subprocess.PIPE)
        imported = run(["docker", "import", "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
                       check=False, stdin=tar.stdout)
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"docker import failed: {imported.stderr}")
    sayer(f"built {BASE_IMAGE} with debootstrap in {time.monotonic() - started:.0f} s")
    return "debootstrap"


def _slim(rootfs: Path) -> None:
    """What Debian's own slim image does: no docs, man pages or translations, no apt caches
    or package lists, and the deb822 sources with security updates."""
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(_SLIM_DPKG)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_CLEAN)
    (rootfs / "etc/apt/apt.conf.d/docker-no-languages").write_text(
        'Acquire::Languages "none";\n')
    (rootfs / "etc/apt/apt.conf.d/docker-gzip-indexes").write_text(
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n')
    security = DEBIAN_MIRROR.rstrip("/") + "-security"
    (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
        _SOURCES.format(mirror=DEBIAN_MIRROR, security=security))
    (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
    for pattern in ("usr/share/doc/*/*", "usr/share/man/*", "usr/share/info/*",
                    "usr/share/locale/*", "usr/share/lintian/*", "var/cache/apt/archives/*.deb",
                    "var/cache/apt/*.bin", "var/lib/apt/lists/*", "var/log/*.log",
                    "var/log/apt/*"):
        for path in rootfs.glob(pattern):
            if path.name in ("copyright", "locale.alias") or path.name == "partial":
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


# --- the images --------------------------------------------------------------------------

@dataclass(frozen=True)
class Image:
    repo: str  # imagefleet, imagefleet-redis, ...
    dockerfile: str  # relative to ROOT
    context: str  # relative to ROOT
    env: str  # the compose.yaml variable naming it

    def inputs_hash(self) -> str:
        """A hash of the Dockerfile and of every file it copies from its context (the CA
        bundle of deploy/ca aside: it only lets pip through, whatever it holds)."""
        digest = hashlib.sha256()
        dockerfile = ROOT / self.dockerfile
        digest.update(dockerfile.read_bytes())
        context = ROOT / self.context
        sources: set[str] = set()
        for line in dockerfile.read_text().splitlines():
            match = re.match(r"\s*COPY\s+(?!--from)(.+)", line)
            if match:
                sources.update(match.group(1).split()[:-1])
        for source in sorted(sources):
            if source.rstrip("/") in ("deploy/ca", "ca"):
                continue
            path = context / source
            files = [path] if path.is_file() else sorted(
                p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                and p.suffix != ".pyc" and p.name != "results.json")
            for file in files:
                digest.update(str(file.relative_to(context)).encode() + b"\0")
                digest.update(file.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def ref(self) -> str:
        return f"{self.repo}:{self.inputs_hash()}"


IMAGES = (
    Image("imagefleet", "Dockerfile", ".", "FLEET_IMAGE"),
    Image("imagefleet-redis", "deploy/redis.Dockerfile", "deploy", "FLEET_REDIS_IMAGE"),
    Image("imagefleet-seaweedfs", "deploy/seaweedfs.Dockerfile", "deploy",
          "FLEET_SEAWEEDFS_IMAGE"),
    Image("imagefleet-haproxy", "deploy/haproxy.Dockerfile", "deploy", "FLEET_LB_IMAGE"),
    Image("imagefleet-flower", "deploy/flower.Dockerfile", "deploy", "FLEET_FLOWER_IMAGE"),
)


def _ca_for_builds() -> None:
    """The host's CA bundle where pip inside a build can use it (only the build stages read
    it; git-ignored). A network that re-signs TLS has its CA there; elsewhere it is harmless."""
    for target in (ROOT / "deploy/ca/ca-certificates.crt",):
        if HOST_CA.is_file():
            data = HOST_CA.read_bytes()
            if not target.is_file() or target.read_bytes() != data:
                target.write_bytes(data)
        elif not target.exists():
            target.write_bytes(b"")


@dataclass
class BuildReport:
    built: dict[str, float]  # image ref -> seconds
    reused: list[str]

    def line(self) -> str:
        parts = [f"built {ref} in {secs:.0f} s" for ref, secs in self.built.items()]
        if self.reused:
            parts.append(f"reused {len(self.reused)} image(s) whose inputs are unchanged")
        return "; ".join(parts)


def ensure_images(tag_latest: bool, sayer: Say = say) -> tuple[dict[str, str], BuildReport]:
    """Every image of the stack, tagged with the hash of its inputs (and :latest when asked):
    reused when that tag exists, else built (`docker build`, host network). The compose
    variables naming them, and what was built."""
    ensure_base(sayer)
    _ca_for_builds()
    env, report = {}, BuildReport({}, [])
    for image in IMAGES:
        ref, digest = image.ref(), image.inputs_hash()
        if image_exists(ref):
            report.reused.append(ref)
        else:
            sayer(f"building {ref} from {image.dockerfile}")
            started = time.monotonic()
            result = run(["docker", "build", "--force-rm", "--network", "host", "--label",
                          f"{HASH_LABEL}={digest}", "-t", ref, "-f", str(ROOT / image.dockerfile),
                          str(ROOT / image.context)], check=False, capture=True,
                         env={**os.environ, "DOCKER_BUILDKIT": "0"})
            if result.returncode != 0:
                raise RuntimeError(f"building {ref} failed:\n{result.stdout[-4000:]}"
                                   f"\n{result.stderr[-4000:]}")
            report.built[ref] = time.monotonic() - started
            sayer(f"built {ref} in {report.built[ref]:.0f} s")
        if tag_latest:
            run(["docker", "tag", ref, f"{image.repo}:latest"])
        env[image.env] = ref
    if report.built:
        prune_old_images()
    return env, report


def prune_old_images(keep: int = 3) -> None:
    """Untag all but the newest `keep` input-hash tags of each image (a test on a CI machine
    builds one per code change); an image a container still uses stays."""
    for image in IMAGES:
        out = run(["docker", "image", "ls", image.repo, "--format",
                   "{{.Tag}}\t{{.CreatedAt}}"], check=False).stdout
        tags = sorted((line.split("\t") for line in out.splitlines()
                       if re.fullmatch(r"[0-9a-f]{16}\t.*", line)),
                      key=lambda tag_created: tag_created[1], reverse=True)
        for tag, _ in tags[keep:]:
            run(["docker", "rmi", f"{image.repo}:{tag}"], check=False)


def image_size(ref: str) -> int:
    return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", ref]).stdout)


# --- compose -----------------------------------------------------------------------------

def compose_argv() -> list[str]:
    """Debian's docker-compose 1.29, or Compose v2 where that is what is installed."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    raise RuntimeError("neither docker-compose nor `docker compose` is installed")


# Variables compose.yaml reads: `isolate` keeps the caller's own out of a test's stack.
STACK_VARIABLES = ("FLEET_", "FLOWER_", "COMPOSE_", "REDIS_", "WORKER_", "SEAWEEDFS_")


def compose(project: str, env_file: Path, *args: str, env: dict[str, str] | None = None,
            check: bool = True, capture: bool = True, timeout: float | None = None,
            isolate: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [*compose_argv(), "--env-file", str(env_file), "-p", project,
            "-f", str(COMPOSE_FILE), *args]
    base = {k: v for k, v in os.environ.items()
            if not (isolate and k.startswith(STACK_VARIABLES))}
    return run(argv, check=check, capture=capture, timeout=timeout, cwd=str(ROOT),
               env={**base, **(env or {})})


def new_secrets() -> dict[str, str]:
    """Fresh credentials for a stack: S3 keys and Flower's basic auth."""
    return {"FLEET_S3_ACCESS_KEY": "fleet-" + secrets.token_hex(6),
            "FLEET_S3_SECRET_KEY": secrets.token_urlsafe(30),
            "FLOWER_BASIC_AUTH": "admin:" + secrets.token_urlsafe(18)}


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def ensure_env_file(path: Path = ENV_FILE, sayer: Say = say) -> dict[str, str]:
    """.env (git-ignored, mode 600): written with generated credentials on the first run,
    kept as the operator edits it afterwards."""
    if not path.exists():
        lines = ["# Written by `make stack` (deploy/stack.py); yours to edit. Git-ignored.",
                 f"COMPOSE_PROJECT_NAME={PROJECT}",
                 *(f"{k}={v}" for k, v in new_secrets().items()),
                 "# FLEET_REDIS_URL=redis://:password@redis.example:6379/0",
                 "# FLEET_BROKER_URL=amqp://user:password@rabbitmq.example:5672//",
                 "# FLEET_STORAGE_URL=s3://minio.example:9000/imagefleet?secure=true",
                 "# FLEET_LB_PORT=8080", "# FLEET_FLOWER_PORT=5555", ""]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines))
        sayer(f"wrote {path.name} with generated S3 keys and Flower credentials (mode 600)")
    values = read_env_file(path)
    missing = [k for k in new_secrets() if not values.get(k) and not os.environ.get(k)]
    if missing:
        raise RuntimeError(f"{path} sets no {', '.join(missing)}: add them or delete the file"
                           " to have new ones generated")
    return values


def wait_ready(url: str, timeout: float, sayer: Say = say) -> float:
    """Seconds until `url` (/readyz) answers 200; TimeoutError with its last answer."""
    started, last = time.monotonic(), "no answer"
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:300].decode(errors='replace')}"
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s: {last}")


# --- the two commands --------------------------------------------------------------------

def up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    pid = start_engine(STATE / "dockerd.log", DAEMON_PID)
    if pid is not None:
        say(f"dockerd started (pid {pid}, recorded in {DAEMON_PID.relative_to(ROOT)};"
            " `make stack-down` stops it)")
    values = ensure_env_file()
    project = os.environ.get("COMPOSE_PROJECT_NAME") or values.get("COMPOSE_PROJECT_NAME",
                                                                     PROJECT)
    images, report = ensure_images(tag_latest=True)
    if report.built:
        say(report.line())
    say(f"starting the stack (compose project {project})")
    up_started = time.monotonic()
    compose(project, ENV_FILE, "up", "-d", "--no-build", env=images, capture=False)
    port = os.environ.get("FLEET_LB_PORT") or values.get("FLEET_LB_PORT") or "8080"
    wait_ready(f"http://127.0.0.1:{port}/readyz", args.timeout)
    say(f"ready on http://127.0.0.1:{port} ({time.monotonic() - started:.0f} s in all,"
        f" {time.monotonic() - up_started:.0f} s from `up` to /readyz)")
    flower_port = (os.environ.get("FLEET_FLOWER_PORT") or values.get("FLEET_FLOWER_PORT")
                   or "5555")
    print(f"""
Create an account and its API key (printed once), in this directory:
  docker-compose exec gateway imagefleet accounts create --name you --credit 25.00
Then, with KEY set to it, the README's quickstart runs against http://127.0.0.1:{port}.
Flower: http://127.0.0.1:{flower_port} (user and password:
FLOWER_BASIC_AUTH in .env). Stop and remove everything: make stack-down""")
    return 0


def down(args: argparse.Namespace) -> int:
    values = read_env_file(ENV_FILE) if ENV_FILE.exists() else {}
    project = os.environ.get("COMPOSE_PROJECT_NAME") or values.get("COMPOSE_PROJECT_NAME",
                                                                     PROJECT)
    if engine_answers():
        env_file = ENV_FILE
        if not env_file.exists():  # compose still needs the variables to parse the file
            env_file = STATE / "down.env"
            env_file.parent.mkdir(parents=True, exist_ok=True)
            env_file.write_text("".join(f"{k}=-\n" for k in new_secrets()))
        say(f"removing the stack (compose project {project}): containers, networks, volumes")
        compose(project, env_file, "down", "--volumes", "--remove-orphans", capture=False)
    else:
        say("no Docker engine answers: no stack to remove")
    if DAEMON_PID.exists():
        pid = int(DAEMON_PID.read_text().split()[0])
        others = foreign_containers() if engine_answers() else []
        if others:
            say(f"leaving dockerd {pid} running: other containers use it ({', '.join(others[:5])})")
            return 0
        if stop_engine(pid):
            say(f"stopped dockerd (pid {pid}), which `make stack` had started")
        DAEMON_PID.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="build what is missing, start the stack, wait for /readyz")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for /readyz")
    p.set_defaults(func=up)
    sub.add_parser("down", help="remove the stack; stop dockerd if `up` started it").set_defaults(
        func=down)
    sub.add_parser("base", help="only the base image").set_defaults(
        func=lambda a: (print(ensure_base()), 0)[1])
    sub.add_parser("build", help="only the images").set_defaults(
        func=lambda a: (print(json.dumps(ensure_images(tag_latest=True)[0], indent=2)), 0)[1])
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        print(f"stack: {exc}\n{detail}".rstrip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
