#!/usr/bin/env python3
"""The compose stack on this machine's Docker engine: `make stack` and `make stack-down`.

    python3 deploy/stack.py up      # engine, base image, images, .env, the stack, /readyz
    python3 deploy/stack.py down    # the stack's containers, networks, volumes; our engine
    python3 deploy/stack.py base    # only the debian:bookworm-slim base image
    python3 deploy/stack.py build   # only the images (reused when their inputs are unchanged)

Standard library only: it runs before any venv exists. It stops only what it started: the
Docker daemon by the pid it wrote to var/stack/dockerd.pid. The daemon is deploy/engine.py,
the images deploy/images.py; this module is the two commands, .env, compose and readiness.
tests/stack_harness.py drives the same functions under a project name of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script: `python3 deploy/stack.py up`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Re-exported: tests and callers reach the daemon and the images through deploy.stack too.
from deploy.engine import (  # noqa: E402
    Say,
    engine_answers,
    foreign_containers,
    run,
    say,
    start_engine,
    stop_engine,
    why_no_engine,
)
from deploy.images import (  # noqa: E402
    BASE_IMAGE,
    IMAGES,
    BuildReport,
    Image,
    ensure_base,
    ensure_images,
    image_size,
)

__all__ = [
    "BASE_IMAGE",
    "IMAGES",
    "BuildReport",
    "Image",
    "Say",
    "compose",
    "engine_answers",
    "ensure_base",
    "ensure_env_file",
    "ensure_images",
    "foreign_containers",
    "image_size",
    "main",
    "new_secrets",
    "read_env_file",
    "run",
    "say",
    "start_engine",
    "stop_engine",
    "wait_ready",
    "why_no_engine",
]

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "var" / "stack"
DAEMON_PID = STATE / "dockerd.pid"
ENV_FILE = ROOT / ".env"
COMPOSE_FILE = ROOT / "compose.yaml"
PROJECT = "imagefleet"


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


def compose(
    project: str,
    env_file: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    isolate: bool = False,
) -> subprocess.CompletedProcess[str]:
    argv = [
        *compose_argv(),
        "--env-file",
        str(env_file),
        "-p",
        project,
        "-f",
        str(COMPOSE_FILE),
        *args,
    ]
    base = {k: v for k, v in os.environ.items() if not (isolate and k.startswith(STACK_VARIABLES))}
    return run(
        argv,
        check=check,
        capture=capture,
        timeout=timeout,
        cwd=str(ROOT),
        env={**base, **(env or {})},
    )


def new_secrets() -> dict[str, str]:
    """Fresh credentials for a stack: S3 keys and Flower's basic auth."""
    return {
        "FLEET_S3_ACCESS_KEY": "fleet-" + secrets.token_hex(6),
        "FLEET_S3_SECRET_KEY": secrets.token_urlsafe(30),
        "FLOWER_BASIC_AUTH": "admin:" + secrets.token_urlsafe(18),
    }


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
        lines = [
            "# Written by `make stack` (deploy/stack.py); yours to edit. Git-ignored.",
            f"COMPOSE_PROJECT_NAME={PROJECT}",
            *(f"{k}={v}" for k, v in new_secrets().items()),
            "# FLEET_REDIS_URL=redis://:password@redis.example:6379/0",
            "# FLEET_BROKER_URL=amqp://user:password@rabbitmq.example:5672//",
            "# FLEET_STORAGE_URL=s3://minio.example:9000/imagefleet?secure=true",
            "# FLEET_LB_PORT=8080",
            "# FLEET_FLOWER_PORT=5555",
            "",
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines))
        sayer(f"wrote {path.name} with generated S3 keys and Flower credentials (mode 600)")
    values = read_env_file(path)
    missing = [k for k in new_secrets() if not values.get(k) and not os.environ.get(k)]
    if missing:
        raise RuntimeError(
            f"{path} sets no {', '.join(missing)}: add them or delete the file"
            " to have new ones generated"
        )
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
        say(
            f"dockerd started (pid {pid}, recorded in {DAEMON_PID.relative_to(ROOT)};"
            " `make stack-down` stops it)"
        )
    values = ensure_env_file()
    project = os.environ.get("COMPOSE_PROJECT_NAME") or values.get("COMPOSE_PROJECT_NAME", PROJECT)
    images, report = ensure_images(tag_latest=True)
    if report.built:
        say(report.line())
    say(f"starting the stack (compose project {project})")
    up_started = time.monotonic()
    compose(project, ENV_FILE, "up", "-d", "--no-build", env=images, capture=False)
    port = os.environ.get("FLEET_LB_PORT") or values.get("FLEET_LB_PORT") or "8080"
    wait_ready(f"http://127.0.0.1:{port}/readyz", args.timeout)
    say(
        f"ready on http://127.0.0.1:{port} ({time.monotonic() - started:.0f} s in all,"
        f" {time.monotonic() - up_started:.0f} s from `up` to /readyz)"
    )
    flower_port = os.environ.get("FLEET_FLOWER_PORT") or values.get("FLEET_FLOWER_PORT") or "5555"
    print(f"""
Create an account and its API key (printed once), in this directory:
  docker-compose exec gateway imagefleet accounts create --name you --credit 25.00
Then, with KEY set to it, the README's quickstart runs against http://127.0.0.1:{port}.
Flower: http://127.0.0.1:{flower_port} (user and password:
FLOWER_BASIC_AUTH in .env). Stop and remove everything: make stack-down""")
    return 0


def down(args: argparse.Namespace) -> int:
    values = read_env_file(ENV_FILE) if ENV_FILE.exists() else {}
    project = os.environ.get("COMPOSE_PROJECT_NAME") or values.get("COMPOSE_PROJECT_NAME", PROJECT)
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
        func=down
    )
    sub.add_parser("base", help="only the base image").set_defaults(
        func=lambda a: (print(ensure_base()), 0)[1]
    )
    sub.add_parser("build", help="only the images").set_defaults(
        func=lambda a: (print(json.dumps(ensure_images(tag_latest=True)[0], indent=2)), 0)[1]
    )
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or ""
        print(f"stack: {exc}\n{detail}".rstrip(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
