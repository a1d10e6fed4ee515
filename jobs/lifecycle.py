"""The job lifecycle: every change a job's record goes through, one named transition each.

    queued -> running -> succeeded | failed | canceled      (a redelivery: running -> running)
    queued -> failed                                        (withdrawn: never accepted)
    queued | running -> canceled

Billing follows: held at submission, captured on success; a failure or a cancel records what
it was charged (billing/endings.py: captured when the tenant made the work fail or canceled
it while it ran, else released). An x402 payment follows the same way: authorized at
submission, settled once captured, left unsettled otherwise. The webhook block records each
delivery attempt on an ended job. Each transition names the states it may start from;
`JobStore.apply` applies it atomically, or not at all when the job is in another state (a
task that runs twice, or a job canceled meanwhile, never flips an ended job). The gateway,
the runner and the webhook deliverer change jobs only through these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.records import (
    BillingState,
    Delivery,
    JobBilling,
    JobError,
    JobRecord,
    JobStatus,
    PaymentState,
    Webhook,
    WebhookState,
    now,
)

ANY_STATE = tuple(JobStatus)


@dataclass(frozen=True)
class Transition:
    name: str
    allowed_from: tuple[JobStatus, ...]
    change: Callable[[JobRecord], None]


def start(task_id: str | None, check: Callable[[JobRecord], None]) -> Transition:
    """A run takes the job: a queued one, or a running one whose run was lost (`check`
    raises to refuse, e.g. while another live run owns it)."""

    def begin(record: JobRecord) -> None:
        check(record)
        record.status = JobStatus.RUNNING
        record.attempts += 1
        record.started_at = now()
        record.task_id = task_id

    return Transition("start", (JobStatus.QUEUED, JobStatus.RUNNING), begin)


def succeed(result: dict[str, Any], billing: JobBilling, charged: int) -> Transition:
    """The run finished and the job was paid for (captured first: a rerun finds no hold)."""

    def end(record: JobRecord) -> None:
        record.status = JobStatus.SUCCEEDED
        record.result = result
        record.billing = billing
        record.billing.charged_micros = charged
        record.billing.state = BillingState.CAPTURED
        record.finished_at = now()

    return Transition("succeed", (JobStatus.RUNNING,), end)


def _owes(record: JobRecord, charged: int) -> None:
    """An ended job's charge: captured (and an x402 authorization then settled, as for a
    success), or none: the hold goes back and an authorization is never settled."""
    record.billing.charged_micros = charged
    if charged > 0:
        record.billing.state = BillingState.CAPTURED
        if record.payment is not None and record.payment.state is PaymentState.UNSETTLED:
            record.payment.state = PaymentState.AUTHORIZED  # paid for: it is settled too
        return
    record.billing.state = BillingState.RELEASED
    if record.payment is not None and record.payment.state.open:
        record.payment.state = PaymentState.UNSETTLED


def _failed(error: JobError, charged: int) -> Callable[[JobRecord], None]:
    def end(record: JobRecord) -> None:
        record.status = JobStatus.FAILED
        record.error = error
        record.finished_at = now()
        _owes(record, charged)

    return end


def fail(error: JobError, charged: int = 0) -> Transition:
    """The run ended without a result, owing `charged` (billing/endings.py: its quote when
    the tenant's job made the work fail, else 0 and its hold goes back)."""
    return Transition("fail", (JobStatus.RUNNING,), _failed(error, charged))


def withdraw(error: JobError) -> Transition:
    """The gateway could not accept a job it had recorded (no queue, no replica): it ends
    before any run, and the caller is told to retry."""
    return Transition("withdraw", (JobStatus.QUEUED,), _failed(error, 0))


def cancel(charge: Callable[[JobRecord], int]) -> Transition:
    """The caller canceled: a running job's worker stops at its next checkpoint and keeps
    nothing. `charge` says what the work so far owes, from the record as the cancel finds
    it, `finished_at` already the cancel's moment (billing/endings.py: nothing while
    queued)."""

    def end(record: JobRecord) -> None:
        record.finished_at = now()
        owed = charge(record)
        record.status = JobStatus.CANCELED
        _owes(record, owed)

    return Transition("cancel", (JobStatus.QUEUED, JobStatus.RUNNING), end)


CANCEL = cancel(lambda record: 0)  # a cancel that owes nothing


def keep_charge(charged: int) -> Transition:
    """The ledger's word on what a canceled job was charged, when it differs from what the
    cancel recorded: a cancel that landed just after the worker captured says, honestly, it
    was paid (0: nothing was charged after all)."""

    def keep(record: JobRecord) -> None:
        _owes(record, charged)

    return Transition("keep_charge", (JobStatus.CANCELED,), keep)


def keep_result(result: dict[str, Any]) -> Transition:
    """A canceled job whose work was already paid for keeps what it paid for."""

    def keep(record: JobRecord) -> None:
        record.result = result

    return Transition("keep_result", (JobStatus.CANCELED,), keep)


_PAID_ENDS = (JobStatus.SUCCEEDED, JobStatus.CANCELED, JobStatus.FAILED)


def settled(transaction: str) -> Transition:
    """A captured job's x402 authorization was settled on chain (a success, or a job charged
    for the work it made fail)."""

    def note(record: JobRecord) -> None:
        if record.payment is not None and record.payment.state.open:
            record.payment.state = PaymentState.SETTLED
            record.payment.transaction = transaction

    return Transition("settled", _PAID_ENDS, note)


def settlement_refused(reason: str) -> Transition:
    """The facilitator would not settle a captured job's authorization (say, the payer
    spent the funds meanwhile): the operator sees why; the inline output is dropped (the
    stored ones are deleted by the settler), as it was never paid for."""

    def note(record: JobRecord) -> None:
        if record.payment is not None and record.payment.state.open:  # a settle raced it
            record.payment.state = PaymentState.REFUSED
            record.payment.error = reason
            if record.result is not None:
                record.result.pop("data_base64", None)

    return Transition("settlement_refused", _PAID_ENDS, note)


def owes_settlement(record: JobRecord) -> bool:
    """A captured job whose x402 authorization is not settled yet."""
    return (
        record.payment is not None
        and record.payment.state.open
        and record.billing.state is BillingState.CAPTURED
    )


def new_webhook(url: str | None) -> Webhook | None:
    """The webhook block of a new job (None when it has no webhook)."""
    return Webhook(url=url) if url else None


def record_delivery(url: str, delivery: Delivery, state: WebhookState) -> Transition:
    """One webhook attempt on an ended job (or on a job redelivered on request)."""

    def note(record: JobRecord) -> None:
        webhook = record.webhook or Webhook(url=url)
        webhook.deliveries.append(delivery)
        webhook.state = state
        record.webhook = webhook

    return Transition("record_delivery", ANY_STATE, note)


def owes_work(record: JobRecord) -> bool:
    """Not ended yet, or ended with a webhook or a payment not yet settled: the sweeper
    watches it."""
    if not record.status.terminal or owes_settlement(record):
        return True
    return record.webhook is not None and not record.webhook.state.settled
