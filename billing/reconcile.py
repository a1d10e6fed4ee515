"""`imagefleet billing reconcile`: prove the books balance.

For every account: balance == credits - captures (stored counters, and again summed from
the ledger), held == the sum of open holds, available >= 0, and every open hold belongs to
a job that still exists and has not ended.
"""

from __future__ import annotations

from billing.accounts import Accounts
from jobs.store import JobStore


def reconcile(accounts: Accounts, jobs: JobStore) -> list[str]:
    """Problems found; an empty list means the books balance."""
    problems: list[str] = []
    for name in accounts.names():
        account = accounts.require(name)
        if account.balance_micros != account.credited_micros - account.captured_micros:
            problems.append(
                f"{name}: balance {account.balance_micros} != credits"
                f" {account.credited_micros} - captures {account.captured_micros}"
            )
        entries = accounts.ledger.entries(name)
        credited = sum(int(e["amount"]) for e in entries if e["kind"] == "credit")
        captured = sum(int(e["amount"]) for e in entries if e["kind"] == "capture")
        if account.balance_micros != credited - captured:
            problems.append(
                f"{name}: balance {account.balance_micros} != ledger credits"
                f" {credited} - ledger captures {captured}"
            )
        holds = accounts.ledger.open_holds(name)
        if sum(holds.values()) != account.held_micros:
            problems.append(
                f"{name}: held {account.held_micros} != open holds {sum(holds.values())}"
            )
        if account.available_micros < 0:
            problems.append(f"{name}: available is negative ({account.available_micros})")
        for job_id, amount in holds.items():
            record = jobs.get(job_id)
            if record is None or record.status.terminal:
                state = "gone" if record is None else record.status.value
                problems.append(f"{name}: hold of {amount} outlives job {job_id} ({state})")
    return problems
