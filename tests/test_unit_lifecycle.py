"""The lifecycle's transitions and the store's reading of records kept from older releases
(no server: the transitions are applied to records in memory)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import pytest

from jobs import lifecycle
from jobs.lifecycle import Transition
from jobs.records import (
    BillingState,
    Delivery,
    JobBilling,
    JobError,
    JobRecord,
    JobStatus,
    WebhookState,
    now,
)
from jobs.store import decode_record
from jobs.tone import GrayscaleJob


def _record(status: JobStatus, webhook: str | None = None) -> JobRecord:
    at = now()
    return JobRecord(
        id="job_1",
        tenant="t",
        operation="grayscale",
        status=status,
        spec=GrayscaleJob(input="in.png", webhook_url=webhook),
        created_at=at,
        updated_at=at,
        billing=JobBilling(megapixels=1.0, quoted_micros=300),
        webhook=lifecycle.new_webhook(webhook),
    )


def _apply(record: JobRecord, transition: Transition) -> JobRecord | None:
    """What JobStore.apply does, minus Redis: the change, only from the states it names."""
    if record.status not in transition.allowed_from:
        return None
    transition.change(record)
    return record


TRANSITIONS = {
    "start": lifecycle.start("task", lambda record: None),
    "succeed": lifecycle.succeed({"output": "o.png"}, JobBilling(quoted_micros=300), 300),
    "fail": lifecycle.fail(JobError("TIMEOUT", "slow")),
    "withdraw": lifecycle.withdraw(JobError("UNAVAILABLE", "no queue")),
    "cancel": lifecycle.CANCEL,
}
# From which states each may start, and where it leaves the job.
EXPECTED = {
    "start": ({JobStatus.QUEUED, JobStatus.RUNNING}, JobStatus.RUNNING),
    "succeed": ({JobStatus.RUNNING}, JobStatus.SUCCEEDED),
    "fail": ({JobStatus.RUNNING}, JobStatus.FAILED),
    "withdraw": ({JobStatus.QUEUED}, JobStatus.FAILED),
    "cancel": ({JobStatus.QUEUED, JobStatus.RUNNING}, JobStatus.CANCELED),
}


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
@pytest.mark.parametrize("status", list(JobStatus))
def test_a_transition_moves_only_from_the_states_it_names(name: str, status: JobStatus) -> None:
    allowed, to = EXPECTED[name]
    record = _apply(_record(status), TRANSITIONS[name])
    if status in allowed:
        assert record is not None and record.status is to
    else:
        assert record is None


def test_no_transition_leaves_an_ended_job() -> None:
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED):
        for transition in TRANSITIONS.values():
            assert _apply(_record(status), transition) is None


def test_billing_follows_the_job() -> None:
    done = _apply(_record(JobStatus.RUNNING), TRANSITIONS["succeed"])
    assert done is not None and done.billing.state is BillingState.CAPTURED
    assert done.billing.charged_micros == 300 and done.finished_at is not None
    failed = _apply(_record(JobStatus.RUNNING), lifecycle.fail(JobError("INTERNAL_ERROR", "ours")))
    assert failed is not None and failed.billing.state is BillingState.RELEASED
    owed = _apply(_record(JobStatus.RUNNING), lifecycle.fail(JobError("TIMEOUT", "slow"), 300))
    assert owed is not None and owed.status is JobStatus.FAILED
    assert (owed.billing.state, owed.billing.charged_micros) == (BillingState.CAPTURED, 300)
    ran = _apply(_record(JobStatus.RUNNING), lifecycle.cancel(lambda record: 120))
    assert ran is not None and ran.status is JobStatus.CANCELED
    assert (ran.billing.state, ran.billing.charged_micros) == (BillingState.CAPTURED, 120)
    canceled = _apply(_record(JobStatus.QUEUED), lifecycle.CANCEL)
    assert canceled is not None and canceled.billing.state is BillingState.RELEASED
    paid = _apply(canceled, lifecycle.keep_charge(120))
    assert paid is not None and paid.status is JobStatus.CANCELED
    assert (paid.billing.state, paid.billing.charged_micros) == (BillingState.CAPTURED, 120)


def test_webhook_deliveries_are_recorded_and_settle() -> None:
    record = _apply(_record(JobStatus.RUNNING, "https://example.com/h"), TRANSITIONS["fail"])
    assert record is not None and record.webhook is not None
    assert lifecycle.owes_work(record)  # ended, but its webhook is pending
    attempt = Delivery(at=1.0, attempt=1, status=500, latency_ms=3.0, error=None)
    _apply(
        record, lifecycle.record_delivery("https://example.com/h", attempt, WebhookState.RETRYING)
    )
    assert lifecycle.owes_work(record) and len(record.webhook.deliveries) == 1
    ok = Delivery(at=2.0, attempt=2, status=204, latency_ms=2.0, error=None)
    _apply(record, lifecycle.record_delivery("https://example.com/h", ok, WebhookState.DELIVERED))
    assert not lifecycle.owes_work(record)
    shown = record.public()["webhook"]
    assert shown["state"] == "delivered" and [d["status"] for d in shown["deliveries"]] == [
        500,
        204,
    ]


def _stored(spec: Mapping[str, object]) -> bytes:
    body = msgspec.to_builtins(_record(JobStatus.SUCCEEDED))
    body["spec"] = spec
    return msgspec.json.encode(body)


def test_a_record_from_before_specs_refused_ignored_fields_is_still_read() -> None:
    old = {"operation": "ocr", "input": "scan.png", "format": "avif", "output": "z.avif"}
    with pytest.raises(msgspec.ValidationError):  # as today's specs read it
        msgspec.json.decode(_stored(old), type=JobRecord)
    record = decode_record(_stored(old))
    assert record.operation == "grayscale" and record.spec.__struct_config__.tag == "ocr"
    assert "format" not in msgspec.to_builtins(record.spec)


def test_old_pipeline_steps_lose_the_fields_steps_no_longer_take() -> None:
    old = {
        "operation": "pipeline",
        "input": "in.png",
        "steps": [{"operation": "blur", "sigma": 2, "output": "x.png", "page": 0}],
    }
    record = decode_record(_stored(old))
    assert msgspec.to_builtins(record.spec)["steps"] == [{"operation": "blur", "sigma": 2}]


def test_a_record_that_is_broken_otherwise_is_still_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_record(_stored({"operation": "blur", "input": "in.png", "sigma": "much"}))
