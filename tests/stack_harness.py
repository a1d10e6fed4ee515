"""The compose stack for the deployment test: built with deploy/stack.py (images reused when
their inputs' hash matches), started under a compose project name of its own, driven through
its load balancer on a free loopback port and with `docker exec`, and removed afterwards:
its containers, networks and volumes, and the Docker daemon if this harness started it.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw, ImageFont

from deploy import stack
from imagefleet import procs
from tests.fleet_helpers import TERMINAL

Say = Callable[[str], None]

# A webhook receiver, run in a container from the fleet image on the stack's network: every
# POST is one JSON line (headers and body) in /tmp/hooks.jsonl, answered 204.
RECEIVER = r"""
import http.server, json
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with open("/tmp/hooks.jsonl", "a") as out:
            out.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                  "body": body.decode()}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
open("/tmp/hooks.jsonl", "a").close()
http.server.ThreadingHTTPServer(("0.0.0.0", 9000), Hook).serve_forever()
"""


def docker(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], check=check, capture_output=True, text=True, timeout=timeout, input=input
    )


def skip_reason() -> str | None:
    """Why the deployment test cannot run here, or None."""
    if os.environ.get("FLEET_SKIP_STACK") == "1":
        return "FLEET_SKIP_STACK=1"
    return stack.why_no_engine()


@dataclass
class Stack:
    project: str
    workdir: Path
    env_file: Path
    env: dict[str, str]
    lb_port: int
    flower_port: int
    flower_auth: str
    daemon_pid: int | None
    timings: dict[str, float] = field(default_factory=dict)
    build: stack.BuildReport | None = None
    extra_containers: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def network(self) -> str:
        return f"{self.project}_default"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return stack.compose(
            self.project,
            self.env_file,
            *args,
            env=self.env,
            check=check,
            timeout=timeout,
            isolate=True,
        )

    def containers(self, service: str, running_only: bool = True) -> list[str]:
        """Container names of one service, in replica order."""
        args = [
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ]
        if not running_only:
            args.insert(1, "-a")
        return sorted(docker(*args).stdout.split(), key=lambda n: int(n.rsplit("_", 1)[1]))

    def container(self, service: str) -> str:
        names = self.containers(service)
        if not names:
            raise RuntimeError(f"no running {service} container")
        return names[0]

    def exec(
        self, service_or_name: str, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        name = (
            service_or_name
            if service_or_name.startswith(self.project + "_")
            else self.container(service_or_name)
        )
        return docker("exec", name, *argv, check=check, timeout=timeout)

    def python(self, code: str, service: str = "gateway", timeout: float = 120) -> str:
        """Run Python in a fleet container (its settings, its network); its stdout."""
        return self.exec(service, "python", "-c", code, timeout=timeout).stdout

    def create_account(self, name: str, credit: str, rate_limit: int = 0) -> tuple[str, str]:
        """(API key, webhook secret) of a new account, made by the CLI inside a gateway."""
        argv = ["imagefleet", "accounts", "create", "--name", name, "--credit", credit]
        if rate_limit:
            argv += ["--rate-limit", str(rate_limit)]
        out = self.exec("gateway", *argv).stdout
        key = secret = ""
        for line in out.splitlines():
            if line.startswith("API key"):
                key = line.rsplit(" ", 1)[1]
            elif line.startswith("webhook signing secret"):
                secret = line.rsplit(" ", 1)[1]
        if not (key and secret):
            raise RuntimeError(f"accounts create said: {out}")
        return key, secret

    def start_receiver(self) -> str:
        """A webhook receiver on the stack's network, reachable as http://hooks:9000."""
        name = f"{self.project}_hooks"
        docker(
            "run",
            "-d",
            "--init",
            "--name",
            name,
            "--label",
            f"org.imagefleet.test-of={self.project}",
            "--network",
            self.network,
            "--network-alias",
            "hooks",
            self.env["FLEET_IMAGE"],
            "python",
            "-c",
            RECEIVER,
        )
        self.extra_containers.append(name)
        return name

    def hooks(self, receiver: str) -> list[dict]:
        out = docker("exec", receiver, "cat", "/tmp/hooks.jsonl").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, name: str, tail: int = 200) -> str:
        result = docker("logs", "--tail", str(tail), name, check=False)
        return result.stdout + result.stderr

    def save_logs(self) -> Path:
        """Every container's log, into workdir/logs (read them after a failed run)."""
        folder = self.workdir / "logs"
        folder.mkdir(exist_ok=True)
        names = docker(
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            check=False,
        ).stdout
        for name in [*names.split(), *self.extra_containers]:
            (folder / f"{name}.log").write_text(self.logs(name, tail=100_000))
        return folder

    def down(self, say: Say) -> list[str]:
        """Remove everything of this project; what is left of it afterwards (should be [])."""
        say(f"stack: container logs saved in {self.save_logs()}")
        for name in self.extra_containers:
            docker("rm", "-f", name, check=False)
        self.compose(
            "down", "--volumes", "--remove-orphans", "--timeout", "5", check=False, timeout=300
        )
        left = []
        for kind in ("container", "network", "volume"):
            args = [kind, "ls", "-a"] if kind == "container" else [kind, "ls"]
            out = docker(
                *args,
                "-q",
                "--filter",
                f"label=com.docker.compose.project={self.project}",
                check=False,
            ).stdout
            left += [f"{kind} {x}" for x in out.split()]
        if self.daemon_pid is not None:
            others = stack.foreign_containers()
            if others:
                say(
                    f"stack: leaving the dockerd this test started (pid {self.daemon_pid}):"
                    f" other containers use it now ({', '.join(others[:3])})"
                )
            else:
                stack.stop_engine(self.daemon_pid, say)
                if procs.port_open(self.lb_port):
                    left.append(f"port {self.lb_port} still open")
        return left


def start_stack(
    workdir: Path,
    say: Say,
    scale: dict[str, int] | None = None,
    settings: dict[str, str] | None = None,
    ready_timeout: float = 300,
) -> Stack:
    """Build what is missing and start the stack; the Stack once /readyz answers 200.
    On failure, everything started so far is removed again."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def note(text: str) -> None:  # deploy/stack.py's messages, marked as the stack's
        say(f"stack: {text}")

    daemon_pid = stack.start_engine(workdir / "dockerd.log", pid_file=None, sayer=note)
    timings = {"engine": time.monotonic() - started}
    images, report = stack.ensure_images(tag_latest=False, sayer=note)
    timings["build"] = time.monotonic() - started - timings["engine"]
    credentials = stack.new_secrets()
    env_file = workdir / "stack.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in credentials.items()))
    env_file.chmod(0o600)
    lb_port, flower_port, s3_port = procs.free_port(), procs.free_port(), procs.free_port()
    env = {
        **images,
        **(settings or {}),
        "FLEET_LB_PORT": str(lb_port),
        "FLEET_FLOWER_PORT": str(flower_port),
        "FLEET_S3_PORT": str(s3_port),
        "FLEET_S3_PUBLIC_URL": f"http://127.0.0.1:{s3_port}",
        "FLEET_PUBLIC_URL": f"http://127.0.0.1:{lb_port}",
    }
    result = Stack(
        project=f"iftest{secrets.token_hex(3)}",
        workdir=workdir,
        env_file=env_file,
        env=env,
        lb_port=lb_port,
        flower_port=flower_port,
        flower_auth=credentials["FLOWER_BASIC_AUTH"],
        daemon_pid=daemon_pid,
        timings=timings,
        build=report,
    )
    up_started = time.monotonic()
    try:
        argv = ["up", "-d", "--no-build"]
        for service, count in (scale or {}).items():
            argv += ["--scale", f"{service}={count}"]
        result.compose(*argv)
        stack.wait_ready(f"{result.base_url}/readyz", ready_timeout, note)
    except BaseException:
        for name in ("gateway", "storage-init", "lb"):
            for container in result.containers(name, running_only=False):
                say(f"--- {container}\n{result.logs(container, 40)}")
        result.down(say)
        raise
    timings["up"] = time.monotonic() - up_started
    return result


# --- talking to it ------------------------------------------------------------------------


def api_client(running: Stack, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=running.base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    )


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def text_png(text: str) -> bytes:
    canvas = Image.new("L", (520, 70), 255)
    font = ImageFont.truetype("DejaVuSans.ttf", 32)
    ImageDraw.Draw(canvas).text((12, 14), text, fill=0, font=font)
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()
