"""`imagefleet submit --pay-with-key`: the payer's side of the CLI (docs/payments.md). The
key comes from the option or FLEET_X402_PAYER_KEY, as hex or a file (x402-dev's
`var/x402-payer.json`); the payment's outcome is one line, and a settled job's output is
fetched from its signed `output_url` (a payer has no key for /v1/objects)."""

from __future__ import annotations

import argparse
import os
from decimal import Decimal
from pathlib import Path

import httpx

from imagefleet.client import Client, JobResult, PayerKeyError
from imagefleet.client_x402 import read_payer_key

PAYER_KEY_ENV = "FLEET_X402_PAYER_KEY"


def add_payer_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pay-with-key",
        metavar="FILE_OR_HEX",
        help=f"pay the job with x402 instead of an API key (default: {PAYER_KEY_ENV}): an EVM"
        " private key in hex, or a file holding it (x402-dev's var/x402-payer.json); waits"
        " for the job and prints its settlement. Inputs must be inline",
    )


def payer_key(args: argparse.Namespace) -> str | None:
    """The payer key of this command (the option, else the environment), or None."""
    value = getattr(args, "pay_with_key", None) or os.environ.get(PAYER_KEY_ENV)
    if not value:
        return None
    try:
        return read_payer_key(value)
    except PayerKeyError as exc:
        raise SystemExit(f"imagefleet: {exc}") from None


def paying_client(url: str, args: argparse.Namespace, key: str) -> Client:
    if args.key:
        raise SystemExit("imagefleet: --key or a payer key, not both: a keyed job is never paid")
    try:
        return Client(url, payer_key=key)
    except PayerKeyError as exc:
        raise SystemExit(f"imagefleet: {exc}") from None


def payment_line(job: JobResult) -> str:
    """What the job's payment came to: settled (with its transaction), refused, or unused."""
    payment = job.payment or {}
    amount = f"${Decimal(payment.get('amount_micros', 0)) / 1_000_000:,.6f}"
    settled = job.settlement
    if settled is not None and settled.success:
        return f"paid {amount} from {settled.payer}: transaction {settled.transaction}" + (
            f" on {settled.network}" if settled.network else ""
        )
    if settled is not None:
        return f"not settled: {settled.error_reason or 'refused'} (nothing was paid)"
    if job.done and not job.ok:
        return f"not settled: the job {job.status}, so nothing was paid"
    return f"payment {payment.get('state', 'pending')}: not settled yet"


def download_paid(job: JobResult, path: str | Path) -> str:
    """Save a settled job's output from its signed URL; the URL fetched."""
    url = (job.result or {}).get("output_url")
    if not url:
        raise SystemExit(f"imagefleet: job {job.id} has no output_url (is it settled?)")
    reply = httpx.get(url, timeout=60, follow_redirects=True)
    if reply.status_code != 200:
        raise SystemExit(f"imagefleet: the output of {job.id}: HTTP {reply.status_code}")
    Path(path).write_bytes(reply.content)
    return str(url)
