"""The Docker engine deploy/stack.py and the deployment test run on: whether one answers,
starting dockerd (root, --iptables=false) when none does, and stopping only the daemon we
started, by its pid. Also the two helpers every deploy/ module uses: `run` and `say`.

Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

Say = Callable[[str], None]


def say(text: str) -> None:
    print(f"stack: {text}", flush=True)


def run(
    argv: list[str],
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    **kw: object,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        check=check,
        text=True,
        timeout=timeout,  # type: ignore[call-overload]
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        **kw,
    )


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
        child = subprocess.Popen(
            ["dockerd", "--iptables=false", "--ip6tables=false"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
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
    out = run(
        ["docker", "ps", "-a", "--format", '{{.Names}}\t{{.Label "com.docker.compose.project"}}'],
        check=False,
    ).stdout
    return [
        line.split("\t")[0]
        for line in out.splitlines()
        if line.strip() and line.split("\t")[-1] not in mine
    ]


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
