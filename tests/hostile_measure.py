"""Measuring a hostile tenant's attacks on a local fleet: peak RSS from /proc (VmHWM,
restarted through clear_refs), jobs run to their end and timed, each attack's row of the
Markdown table, and the fleet itself: default limits, stopped by its pid, or by a watchdog
if the run hangs. Used by tests/hostile_report.py and the tests/test_hostile_*.py tests.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from unittest import mock

import httpx
import numpy as np

from tests.fleet_harness import Fleet, descendants, process_table, start_fleet, wait_for_job

# --- /proc -------------------------------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    """The Vm* fields (VmRSS, VmHWM, ...) of /proc/<pid>/status, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name.startswith("Vm"):
            fields[name] = int(rest.split()[0])
    return fields


def restart_peak(pid: int) -> None:
    """Restart the process's VmHWM (its peak RSS) from its current RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def pool_pids(fleet: Fleet, pool: str = "cpu") -> set[int]:
    """The pool's main worker process and its children."""
    table = process_table()
    return {pid for pid in descendants(fleet.child.pid, table) if f"--pool {pool}" in table[pid][1]}


class PoolPeak:
    """Peak RSS of every process of a pool, during one `with` block.

    On entry each process's VmHWM is restarted; a thread samples VmRSS and VmHWM every 50 ms
    meanwhile (so a child that exits mid-attack still counts, up to its last sample); `peak`
    is the largest VmHWM seen, or, if clear_refs was refused, the largest sampled VmRSS."""

    def __init__(self, fleet: Fleet, pool: str = "cpu") -> None:
        self.fleet, self.pool, self.pids = fleet, pool, pool_pids(fleet, pool)
        self.hwm = self.rss = 0
        self.clear_ok = True
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for pid in list(self.pids):
            try:
                fields = memory_kb(pid)
            except OSError:
                continue
            self.rss = max(self.rss, fields.get("VmRSS", 0) * 1024)
            self.hwm = max(self.hwm, fields.get("VmHWM", 0) * 1024)

    def _run(self) -> None:
        ticks = 0
        while not self.stopping.wait(0.05):
            ticks += 1
            if ticks % 10 == 0:  # a recycled worker child has a new pid, its VmHWM fresh
                self.pids |= pool_pids(self.fleet, self.pool)
            self._sample()

    def __enter__(self) -> PoolPeak:
        for pid in self.pids:
            try:
                restart_peak(pid)
            except OSError:
                self.clear_ok = False
        self._sample()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()
        self.pids |= pool_pids(self.fleet, self.pool)
        self._sample()

    @property
    def peak(self) -> int:
        return self.hwm if self.clear_ok else self.rss


# --- jobs, timed -------------------------------------------------------------------------


def wait_running(client: httpx.Client, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/v1/jobs/{job_id}").json()["status"] != "running":
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} not running after {timeout} s")
        time.sleep(0.05)


def post_job(client: httpx.Client, body: dict | bytes) -> tuple[httpx.Response, float]:
    """POST /v1/jobs alone (bytes: raw JSON): the response, and seconds."""
    started = time.monotonic()
    response = (
        client.post("/v1/jobs", json=body)
        if isinstance(body, dict)
        else client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    )
    return response, time.monotonic() - started


def run_job(client: httpx.Client, body: dict, timeout: float) -> tuple[int, dict, float]:
    """POST ?wait=, then poll: (HTTP status of the POST, the body or final job, seconds)."""
    wait = int(min(60, timeout))
    started = time.monotonic()
    response = client.post(f"/v1/jobs?wait={wait}", json=body, timeout=wait + 30)
    data = response.json()
    if (
        response.status_code < 300
        and "id" in data
        and data["status"] not in ("succeeded", "failed", "canceled")
    ):
        data = wait_for_job(client, data["id"], timeout=timeout)
    return response.status_code, data, time.monotonic() - started


# --- rows and the table ------------------------------------------------------------------


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The error code and message of a response (the body's start if it is not JSON)."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", response.text[:200]
    return error.get("code", ""), error.get("message", "")


@dataclass
class Row:
    """What one attack did: its outcome, its bill, its wall time and the pool's peak RSS."""

    attack: str
    outcome: str = ""
    quoted: int | str | None = None
    charged: int | str | None = None
    seconds: float | None = None
    rss_peak: int | None = None
    rss_sampled: int | None = None
    details: list[str] = field(default_factory=list)

    def http(self, response: httpx.Response) -> None:
        code, message = error_of(response)
        self.outcome = f"HTTP {response.status_code} {code}".strip()
        if message:
            self.details.append(f"{response.status_code} {code}: {message}")

    def job(self, http_status: int, job: dict) -> None:
        error, billing = job.get("error") or {}, job.get("billing") or {}
        self.outcome = f"HTTP {http_status}; job {job['status']} {error.get('code', '')}".strip()
        self.quoted, self.charged = billing.get("quoted_micros"), billing.get("charged_micros")
        if error:
            self.details.append(f"job {job['id']} {error.get('code')}: {error.get('message')}")
        if result := job.get("result"):
            self.details.append(
                f"job {job['id']} result {result.get('width')}x"
                f"{result.get('height')} output {result.get('output')}; "
                f"billing {billing}; attempts {job.get('attempts')}"
            )

    def run(self, client: httpx.Client, body: dict, timeout: float) -> None:
        """Run the job to its end, timed: the row gets the job, or its POST's refusal."""
        status, data, self.seconds = run_job(client, body, timeout)
        if "id" in data:
            return self.job(status, data)
        error = data.get("error", {})
        self.outcome = f"HTTP {status} {error.get('code', '')}"
        self.details.append(f"{status} {error.get('code', '')}: {error.get('message', '')}")

    def measure(self, fleet: Fleet, attack: Callable[[Row], None]) -> list[str]:
        """Run `attack` (an exception is an outcome) watching the cpu pool's peak RSS; the
        notes it calls for."""
        print(f"running {self.attack} ...", file=sys.stderr, flush=True)
        peak = PoolPeak(fleet)
        try:
            with peak:
                attack(self)
        except Exception as exc:  # a broken attack is a row, not an abort
            self.outcome = (
                self.outcome + "; " if self.outcome else ""
            ) + f"EXCEPTION {type(exc).__name__}: {exc}"[:300]
            self.details.append(traceback.format_exc(limit=3).replace("\n", " / "))
        self.rss_peak, self.rss_sampled = peak.hwm if peak.clear_ok else None, peak.rss
        print(
            f"  -> {self.outcome} ({self.seconds or 0:.2f} s, {mib(self.rss_peak)})",
            file=sys.stderr,
            flush=True,
        )
        return (
            []
            if peak.clear_ok
            else ["clear_refs was refused: the peak column is empty, see the sampled VmRSS column"]
        )


def ms(value: float | None) -> str:
    return "-" if value is None else (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s")


def spread(times: list[float]) -> str:
    return (
        f"median {ms(float(np.median(times)) if times else None)}, slowest "
        f"{ms(max(times, default=None))}"
    )


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def _money(value: int | str | None) -> str:
    return "-" if value is None else (f"{value:,}" if isinstance(value, int) else value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def print_report(rows: list[Row], settings: dict[str, str], notes: list[str]) -> None:
    print("\n## Hostile tenant replay (after)\n")
    print("Fleet settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()))
    for note in notes:
        print(f"\n{note}")
    print(
        "\n| attack | HTTP status / job status + error code | quoted / charged micro-$ "
        "| wall time | cpu pool peak RSS (VmHWM) | cpu pool max sampled VmRSS |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        money = (
            "-"
            if row.quoted is None and row.charged is None
            else f"{_money(row.quoted)} / {_money(row.charged)}"
        )
        print(
            f"| {_cell(row.attack)} | {_cell(row.outcome)} | {money} | {ms(row.seconds)} "
            f"| {mib(row.rss_peak)} | {mib(row.rss_sampled)} |"
        )
    print("\n### Details\n")
    for row in rows:
        for detail in row.details:
            print(f"- **{_cell(row.attack.split('.')[0])}**: {_cell(detail)}")
    sys.stdout.flush()


# --- the fleet ---------------------------------------------------------------------------


def _settings(fleet: Fleet, extra_env: dict[str, str]) -> dict[str, str]:
    """The limits the fleet runs with, as `imagefleet up` loads them."""
    from imagefleet.settings import load_settings

    with mock.patch.dict(os.environ, {**extra_env, "FLEET_VAR_DIR": str(fleet.var_dir)}):
        cfg = load_settings()
    return {
        "FLEET_MAX_MEGAPIXELS": f"{cfg.max_megapixels:g} (default)",
        "FLEET_MAX_WORK_MEGAPIXELS": f"{cfg.max_work_megapixels:g} (default)",
        **extra_env,
        "FLEET_MAX_OBJECT_BYTES": f"{cfg.max_object_bytes} (default)",
        "FLEET_MAX_EVENT_STREAMS_PER_KEY": f"{cfg.max_event_streams_per_key} (default)",
        "FLEET_RENDER_MAX_SIDE": f"{cfg.render_max_side} (default)",
        "harness defaults": "FLEET_OCR_CONCURRENCY=1, FLEET_RATE_LIMIT=1000, "
        "FLEET_WEBHOOK_BASE_DELAY=0.2, FLEET_WEBHOOK_ATTEMPTS=4",
        "FLEET_WEBHOOK_ALLOW_LOOPBACK": "1 (`imagefleet up`'s default)",
        "storage": "directory store",
    }


def log_summary(fleet: Fleet) -> str:
    log = fleet.log_file.read_text(errors="replace")
    return (
        f"fleet log: {log.count('Traceback')} tracebacks, {log.count(' ERROR ')} ERROR "
        f"lines, {log.count('; restarting it')} child restarts by `imagefleet up`"
    )


@contextmanager
def default_fleet(
    extra_env: dict[str, str],
    watchdog_seconds: float,
    keep: bool,
) -> Iterator[tuple[Fleet, dict[str, str]]]:
    """A fleet with the default limits but `extra_env`, in a temporary directory (kept if
    `keep`), and its settings; stopped by its pid on exit, or by the watchdog (which ends
    this process) `watchdog_seconds` after the start."""
    workdir = Path(tempfile.mkdtemp(prefix="hostile-report-"))
    fleets: list[Fleet] = []
    stopped = threading.Event()

    def watchdog() -> None:
        if stopped.wait(watchdog_seconds):
            return
        print(
            f"\nwatchdog: still running after {watchdog_seconds} s, stopping the fleet",
            file=sys.stderr,
            flush=True,
        )
        for fleet in fleets:
            fleet.stop()
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    os.environ.pop("FLEET_MAX_MEGAPIXELS", None)  # the defaults, whatever this shell has
    os.environ.pop("FLEET_MAX_WORK_MEGAPIXELS", None)
    try:
        began = time.monotonic()
        fleets.append(start_fleet(workdir / "var", extra_env))
        print(
            f"fleet up on {fleets[0].base_url} in {time.monotonic() - began:.1f} s "
            f"(log {fleets[0].log_file})",
            file=sys.stderr,
            flush=True,
        )
        yield fleets[0], _settings(fleets[0], extra_env)
    finally:
        stopped.set()
        for fleet in fleets:
            fleet.stop()
        if keep:
            print(f"\nkept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


Attacks = list[tuple[str, Callable[[Fleet, httpx.Client, Row], None]]]


def replay(
    attacks: Attacks,
    extra_env: dict[str, str],
    watchdog_seconds: float,
    timeout: float | None = None,
    first: Callable[[Fleet, httpx.Client, list[str]], None] | None = None,
    notes: list[str] | None = None,
) -> int:
    """Run every attack against one `default_fleet` (kept with --keep) and print the
    Markdown table, also of the rows done when one fails or the watchdog fires. `first`
    runs before the attacks (a warm-up) and may add notes."""
    rows: list[Row] = []
    notes = notes if notes is not None else []
    settings: dict[str, str] = {}
    try:
        with (
            default_fleet(extra_env, watchdog_seconds, "--keep" in sys.argv) as (
                fleet,
                settings,
            ),
            fleet.client() as client,
        ):
            if timeout is not None:
                client.timeout = httpx.Timeout(timeout)
            if first is not None:
                first(fleet, client, notes)
            for name, attack in attacks:
                rows.append(Row(name))
                notes += rows[-1].measure(fleet, partial(attack, fleet, client))
            notes.append(log_summary(fleet))
    finally:
        if rows:
            print_report(rows, settings, notes)
    return 0
