"""Webhook deliveries checked on the receiving side (Standard Webhooks signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any


class WebhookVerificationError(Exception):
    """A webhook delivery whose signature or timestamp does not check out."""


def verify_webhook(
    headers: Mapping[str, str], body: bytes, secret: str, tolerance: int = 300
) -> dict[str, Any]:
    """Check a Standard Webhooks delivery and return its JSON payload.

    Signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed by the
    base64 part of `whsec_...`; `webhook-signature` may list several `v1,<b64>` (key rotation).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, -timestamp or -signature header")
    try:
        sent_at = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if abs(time.time() - sent_at) > tolerance:  # replay protection, both directions
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not whsec_<base64>") from None
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    )
    for candidate in signatures.split():
        version, _, sig = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            try:
                return json.loads(body)
            except ValueError:
                raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no matching v1 signature")
