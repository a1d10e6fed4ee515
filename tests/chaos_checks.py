"""What the chaos run (tests/chaos.py) checks once every job has ended, from the outside:
one webhook event per job, agreeing with the job; one capture per succeeded job and per
failure the job caused (billing/endings.py), none for the others; outputs that decode at
the expected size; no hold left open, the balance the captures explain, and nothing left
queued or running; and the report it prints."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
from PIL import Image

from billing.accounts import Accounts
from billing.endings import failure_charge
from billing.ledger import Ledger
from imagefleet.redis_conn import text
from jobs.store import STATES
from tests.receiver import Receiver


@dataclass
class Report:
    submitted: int = 0
    accepted: int = 0
    submit_retries: int = 0
    kills: int = 0
    redis_restarts: int = 0
    reruns: int = 0
    fleet_restarts: int = 0
    sweeper_resends: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    webhook_calls: int = 0
    webhook_duplicates: int = 0
    webhook_torn: int = 0
    outputs_checked: int = 0
    captures: int = 0
    seconds: float = 0.0

    def problem(self, text: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(text)

    def summary(self) -> str:
        lines = [
            f"jobs submitted {self.submitted}, accepted {self.accepted}"
            f" (submission retries {self.submit_retries})",
            f"faults: {self.kills} worker children SIGKILLed, {self.redis_restarts} Redis"
            " restart(s)",
            f"recovery: {self.reruns} jobs ran again after a kill, {self.fleet_restarts} fleet"
            f" processes restarted by `imagefleet up`, {self.sweeper_resends} lost messages"
            " resent by the sweeper",
            "ended: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())),
            f"outputs decoded and measured: {self.outputs_checked}",
            f"captures: {self.captures} (one per succeeded job or failure it caused)",
            f"webhook calls {self.webhook_calls} ({self.webhook_duplicates} duplicates, deduped"
            f" by webhook-id; {self.webhook_torn} torn by a kill and refused, retried)",
            f"lost or wrong: {len(self.problems)}",
            *(f"  - {p}" for p in self.problems[:30]),
            f"took {self.seconds:.0f} s",
        ]
        return "\n".join(lines)


def _owes(job: dict[str, Any]) -> int:
    """Captures an ended job that did not succeed should have: one when it failed by its own
    doing (charged its quote) or was canceled while running, none otherwise."""
    if job["status"] == "failed":
        return 1 if failure_charge(job["error"]["code"], 1) else 0
    return 1 if job["started_at"] is not None else 0  # a cancel while running pays its share


def check(
    client: httpx.Client,
    fleet_redis: redis.Redis,
    jobs: dict[str, dict],
    expected: dict[str, tuple[int, int] | None],
    receiver: Receiver,
    report: Report,
    credit: int,
) -> None:
    ledger = Ledger(fleet_redis)
    entries = ledger.entries("dev")
    captures = Counter(e["job"] for e in entries if e["kind"] == "capture")
    report.captures = sum(captures.values())
    by_id: dict[str, list[dict[str, Any]]] = {}
    for call in list(receiver.calls):
        if not call["valid"]:  # a sender killed mid-request: the receiver rejects it, and
            report.webhook_torn += 1  # the delivery is retried (checked below)
            continue
        by_id.setdefault(json.loads(call["body"])["id"], []).append(call)
    report.webhook_calls = len(receiver.calls)
    for job_id, job in jobs.items():
        report.reruns += job["attempts"] > 1
        report.statuses[
            job["status"] if job["status"] != "failed" else f"failed {job['error']['code']}"
        ] += 1
        calls = by_id.get(job_id, [])
        ids = {c["headers"]["webhook-id"] for c in calls}
        report.webhook_duplicates += len(calls) - len(ids)
        if len(ids) != 1:
            report.problem(f"{job_id}: {len(ids)} distinct webhook events (want 1)")
        elif json.loads(calls[0]["body"])["status"] != job["status"]:
            report.problem(f"{job_id}: webhook says a different end than the job")
        if job["status"] == "succeeded":
            if captures[job_id] != 1 or job["billing"]["charged_micros"] <= 0:
                report.problem(
                    f"{job_id}: {captures[job_id]} captures, charged"
                    f" {job['billing']['charged_micros']}"
                )
            size = expected[job_id]
            if size is not None:
                data = client.get(f"/v1/objects/{job['result']['output']}").content
                try:
                    with Image.open(io.BytesIO(data)) as out:
                        out.load()
                        if out.size != size:
                            report.problem(f"{job_id}: output {out.size}, want {size}")
                except Exception as exc:  # noqa: BLE001 - any unreadable output is a finding
                    report.problem(f"{job_id}: output unreadable ({exc})")
                report.outputs_checked += 1
        elif captures[job_id] != _owes(job):
            report.problem(
                f"{job_id}: {job['status']} {(job['error'] or {}).get('code', '')}"
                f" {job['billing']} but captured {captures[job_id]}x"
            )
    account = Accounts(fleet_redis).require("dev")
    charged = sum(j["billing"]["charged_micros"] or 0 for j in jobs.values())
    if account.held_micros != 0 or ledger.open_holds("dev"):
        report.problem(f"holds left open: {ledger.open_holds('dev')}")
    if account.balance_micros != credit - charged:
        report.problem(f"balance {account.balance_micros}, want {credit - charged}")
    states = {text(k): int(v) for k, v in fleet_redis.hgetall(STATES).items()}
    if states.get("queued", 0) or states.get("running", 0):
        report.problem(f"jobs left unended in the fleet: {states}")
