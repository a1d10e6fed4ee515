"""An x402 payment through the job lifecycle: authorized at submission, settled only once
captured (a success, or a failure the job caused), left unsettled by a failure that owes
nothing or a cancel, and kept when a cancel lands after the capture. Pure transitions on
records: no servers."""

from __future__ import annotations

from jobs import lifecycle
from jobs.crop import CropJob
from jobs.records import (
    BillingState,
    JobBilling,
    JobError,
    JobRecord,
    JobStatus,
    Payment,
    PaymentState,
    new_job_id,
    now,
)
from jobs.spec import Rect


def _paid_job(status: JobStatus = JobStatus.RUNNING) -> JobRecord:
    created = now()
    return JobRecord(
        id=new_job_id(),
        tenant="x402:0xabc",
        operation="crop",
        status=status,
        spec=CropJob(input="in.png", rect=Rect(0, 0, 8, 8), format="png"),
        created_at=created,
        updated_at=created,
        billing=JobBilling(megapixels=1.0, quoted_micros=1000),
        payment=Payment(
            network="imagefleet-dev",
            asset="0xtoken",
            payer="0xabc",
            pay_to="0xdef",
            amount_micros=1000,
            nonce="0x01",
        ),
        payment_header="e30=",
    )


def _apply(record: JobRecord, transition: lifecycle.Transition) -> JobRecord:
    assert record.status in transition.allowed_from, (transition.name, record.status)
    transition.change(record)
    return record


def test_a_success_owes_its_settlement_until_it_is_settled() -> None:
    job = _apply(_paid_job(), lifecycle.succeed({"output": "o.png"}, JobBilling(1.0, 1000), 1000))
    assert job.billing.state is BillingState.CAPTURED
    assert lifecycle.owes_settlement(job) and lifecycle.owes_work(job)
    _apply(job, lifecycle.settled("0xhash"))
    assert job.payment is not None and job.payment.state is PaymentState.SETTLED
    assert job.payment.transaction == "0xhash"
    assert not lifecycle.owes_settlement(job) and not lifecycle.owes_work(job)


def test_a_failure_that_owes_nothing_or_a_cancel_is_never_settled() -> None:
    failed = _apply(_paid_job(), lifecycle.fail(JobError("IMAGE_PARSE_FAILED", "not an image")))
    canceled = _apply(_paid_job(JobStatus.QUEUED), lifecycle.CANCEL)
    for job in (failed, canceled):
        assert job.payment is not None and job.payment.state is PaymentState.UNSETTLED
        assert not lifecycle.owes_settlement(job) and not lifecycle.owes_work(job)
        _apply(job, lifecycle.settled("0xlate"))  # a stray settle task changes nothing
        assert job.payment.state is PaymentState.UNSETTLED and job.payment.transaction is None


def test_a_failure_the_job_caused_is_settled_for_its_charge() -> None:
    failed = _apply(_paid_job(), lifecycle.fail(JobError("TIMEOUT", "slow"), 1000))
    assert (failed.billing.state, failed.billing.charged_micros) == (BillingState.CAPTURED, 1000)
    assert failed.payment is not None and failed.payment.state is PaymentState.AUTHORIZED
    assert lifecycle.owes_settlement(failed) and lifecycle.owes_work(failed)
    _apply(failed, lifecycle.settled("0xhash"))
    assert failed.payment.state is PaymentState.SETTLED and failed.payment.transaction == "0xhash"
    assert not lifecycle.owes_work(failed)


def test_a_cancel_after_the_capture_keeps_the_charge_and_its_settlement() -> None:
    job = _apply(_paid_job(), lifecycle.CANCEL)
    _apply(job, lifecycle.keep_charge(1000))
    assert job.payment is not None and job.payment.state is PaymentState.AUTHORIZED
    assert lifecycle.owes_settlement(job)


def test_a_refusal_after_a_settlement_changes_nothing() -> None:
    job = _apply(_paid_job(), lifecycle.succeed({}, JobBilling(1.0, 1000), 1000))
    _apply(job, lifecycle.settled("0xhash"))
    _apply(job, lifecycle.settlement_refused("nonce already used"))
    assert job.payment is not None and job.payment.state is PaymentState.SETTLED
    assert job.payment.error is None


def test_the_api_never_shows_the_authorization_itself() -> None:
    body = _paid_job().public()
    assert "payment_header" not in body and body["payment"]["state"] == "authorized"
    assert "payment_header" in JobRecord.__struct_fields__
