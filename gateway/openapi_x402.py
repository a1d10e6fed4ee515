"""The x402 side of the OpenAPI document (gateway/x402_api.py): with payments on, the job
routes take `X-PAYMENT` (v1) or `PAYMENT-SIGNATURE` (v2) instead of a key, a `402` may be the
x402 challenge, a paid answer carries `X-PAYMENT-RESPONSE` (v1) or `PAYMENT-RESPONSE` (v2),
and a payer's job is read by its id without a key."""

from __future__ import annotations

from typing import Any

import msgspec

from billing.x402 import PaymentRequired
from gateway.openapi_parts import REF
from imagefleet.settings import Settings

PAID_ROUTES = (("/v1/jobs", "post"), ("/v1/image/{op}", "post"))
SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-PAYMENT",
    "description": "x402: base64 JSON of an EIP-3009 transfer authorization signed for the"
    " 402 challenge's requirements (v2: `PAYMENT-SIGNATURE`). Only with FLEET_X402 on.",
}
SETTLED = {
    "description": "base64 JSON `{success, transaction, network, payer}`: the settlement of"
    " the payment (x402 only; `X-PAYMENT-RESPONSE` answers an `X-PAYMENT`, `PAYMENT-RESPONSE`"
    " a `PAYMENT-SIGNATURE`)",
    "schema": {"type": "string"},
}
SETTLED_HEADERS = ("X-PAYMENT-RESPONSE", "PAYMENT-RESPONSE")


def with_x402(document: dict[str, Any], cfg: Settings) -> dict[str, Any]:
    """`document` with the x402 alternatives added, when payments are on."""
    if cfg.x402 == "off":
        return document
    (challenge,), components = msgspec.json.schema_components([PaymentRequired], ref_template=REF)
    document["components"]["schemas"].update(components)
    document["components"]["securitySchemes"]["x402"] = SCHEME
    paths = document["paths"]
    for path, method in PAID_ROUTES:
        operation = paths[path][method]
        operation["security"] = [{"bearer": []}, {"x402": []}]
        error = operation["responses"]["402"]["content"]["application/json"]["schema"]
        operation["responses"]["402"] = {
            "description": "without a key: the x402 challenge (body and the base64"
            " `PAYMENT-REQUIRED` header); with one: the account cannot cover the job",
            "content": {"application/json": {"schema": {"anyOf": [challenge, error]}}},
        }
        answered = operation["responses"]["200"]
        for header in SETTLED_HEADERS:
            answered.setdefault("headers", {})[header] = SETTLED
    paths["/v1/jobs/{job_id}"]["get"]["security"] = [{"bearer": []}, {}]  # a payer's, by id
    return document
