"""The gateway's client for any x402 facilitator (`FLEET_X402_FACILITATOR_URL`): the local
dev facilitator (billing/x402_facilitator.py) or a hosted one, over the facilitator API:
`POST /verify`, `POST /settle`, `GET /supported`.

Both an async client (the gateway) and a sync one (workers, scripts), sharing the request
and the reading of answers. A facilitator that cannot be reached, times out or answers
something that is not the API raises `FacilitatorError` (a `503` for the caller, never a
verdict on the payment); a payment the facilitator refuses is an answer, not an error.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from billing.x402 import PaymentPayload, PaymentRequirements, SettlementResponse, to_v2

VERIFY_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
SETTLE_TIMEOUT = httpx.Timeout(60.0, connect=3.0)  # a transaction to be mined


class FacilitatorError(RuntimeError):
    """The facilitator did not give a usable answer."""


class Verification(msgspec.Struct, frozen=True, rename="camel"):
    is_valid: bool
    invalid_reason: str | None = None
    payer: str | None = None


class Kind(msgspec.Struct, frozen=True, rename="camel"):
    x402_version: int
    scheme: str
    network: str


class Supported(msgspec.Struct, frozen=True):
    kinds: list[Kind]


def request_body(payment: PaymentPayload, required: PaymentRequirements) -> dict[str, Any]:
    """The facilitator API's body, its requirements in the payment's version's form."""
    asked = msgspec.to_builtins(required if payment.x402_version == 1 else to_v2(required))
    return {
        "x402Version": payment.x402_version,
        "paymentPayload": payment.wire(),
        "paymentRequirements": asked,
    }


def _read(response: httpx.Response, kind: type[Any], what: str) -> Any:
    # A refusal may come as a 400 with the API's body: that is still an answer.
    if response.status_code not in (200, 400):
        raise FacilitatorError(f"facilitator {what}: HTTP {response.status_code}")
    try:
        return msgspec.json.decode(response.content, type=kind)
    except msgspec.DecodeError as exc:
        raise FacilitatorError(f"facilitator {what}: not an x402 answer ({exc})") from None


class AsyncFacilitatorClient:
    """`async with AsyncFacilitatorClient(url) as facilitator: await facilitator.verify(...)`"""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, transport=transport, timeout=VERIFY_TIMEOUT
        )

    async def __aenter__(self) -> AsyncFacilitatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: dict[str, Any], timeout: httpx.Timeout) -> Any:
        try:
            return await self._http.post(path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise FacilitatorError(f"facilitator {path}: {exc!r}") from None

    async def verify(self, payment: PaymentPayload, required: PaymentRequirements) -> Verification:
        response = await self._post("/verify", request_body(payment, required), VERIFY_TIMEOUT)
        verdict: Verification = _read(response, Verification, "/verify")
        return verdict

    async def settle(
        self, payment: PaymentPayload, required: PaymentRequirements
    ) -> SettlementResponse:
        response = await self._post("/settle", request_body(payment, required), SETTLE_TIMEOUT)
        settled: SettlementResponse = _read(response, SettlementResponse, "/settle")
        return settled

    async def supported(self) -> Supported:
        try:
            response = await self._http.get("/supported")
        except httpx.HTTPError as exc:
            raise FacilitatorError(f"facilitator /supported: {exc!r}") from None
        found: Supported = _read(response, Supported, "/supported")
        return found


class FacilitatorClient:
    """The same, blocking: `with FacilitatorClient(url) as facilitator: ...`"""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, transport=transport, timeout=VERIFY_TIMEOUT
        )

    def __enter__(self) -> FacilitatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any], timeout: httpx.Timeout) -> Any:
        try:
            return self._http.post(path, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise FacilitatorError(f"facilitator {path}: {exc!r}") from None

    def verify(self, payment: PaymentPayload, required: PaymentRequirements) -> Verification:
        response = self._post("/verify", request_body(payment, required), VERIFY_TIMEOUT)
        verdict: Verification = _read(response, Verification, "/verify")
        return verdict

    def settle(self, payment: PaymentPayload, required: PaymentRequirements) -> SettlementResponse:
        response = self._post("/settle", request_body(payment, required), SETTLE_TIMEOUT)
        settled: SettlementResponse = _read(response, SettlementResponse, "/settle")
        return settled

    def supported(self) -> Supported:
        try:
            response = self._http.get("/supported")
        except httpx.HTTPError as exc:
            raise FacilitatorError(f"facilitator /supported: {exc!r}") from None
        found: Supported = _read(response, Supported, "/supported")
        return found
