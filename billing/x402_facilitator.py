"""An x402 facilitator for the development chain (billing/x402_chain.py), as an ASGI app.

It speaks the facilitator API every x402 server calls:

- `POST /verify` `{x402Version, paymentPayload, paymentRequirements}` ->
  `{isValid, invalidReason?, payer}`: the local checks (billing/x402_verify.py) against the
  requirements, which must name this chain and its token, then on chain: the nonce unused,
  the balance enough, and a dry run of the transfer.
- `POST /settle` (same body) -> `{success, errorReason?, transaction, network, payer}`: the
  same checks, then `transferWithAuthorization` as a real transaction.
- `GET /supported` -> `{kinds: [{x402Version, scheme, network}]}`.

`balances=True` adds the dev-only `GET /balances/{address}` (tests and docs show balances
move) and `POST /rpc`, the few Ethereum JSON-RPC methods the gateway reads the chain with
(`eth_call`, `eth_chainId`, `eth_blockNumber`, `eth_getBlockByNumber`: billing/x402_rpc.py).
Chain calls are blocking: they run in the thread pool, one at a time (the chain's lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from eth_tester.exceptions import TransactionFailed
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from billing.x402 import (
    ADDRESS,
    ASSET_MISMATCH,
    INSUFFICIENT_FUNDS,
    INVALID_NETWORK,
    INVALID_PAYLOAD,
    INVALID_REQUIREMENTS,
    NONCE_USED,
    SCHEME,
    PaymentPayload,
    PaymentRequirements,
    Refusal,
    chain_id,
    payment_from_json,
    requirements_from_json,
    v1_name,
)
from billing.x402_chain import ChainError, DevChain
from billing.x402_verify import refusal

# Seconds an authorization must still be valid at verification: time to mine the transfer.
# (The gateway checks the job's whole time limit itself before any work.)
SETTLE_MARGIN = 6
INVALID_TRANSACTION_STATE = "invalid_transaction_state"
MAX_BODY_BYTES = 64 * 1024
# The token's revert reasons that have an x402 code of their own.
_REVERTS = {"authorization is used": NONCE_USED, "exceeds balance": INSUFFICIENT_FUNDS}


class Facilitator:
    """Verification and settlement on one DevChain; `clock` gives the time in seconds."""

    def __init__(self, chain: DevChain, clock: Callable[[], float] = time.time) -> None:
        self.chain = chain
        self.clock = clock

    def _on_this_chain(self, required: PaymentRequirements) -> Refusal | None:
        if required.scheme != SCHEME or chain_id(required.network) != self.chain.chain_id:
            return Refusal(INVALID_NETWORK, f"this facilitator settles on {self.chain.network}")
        if required.asset.lower() != self.chain.asset.lower():
            return Refusal(ASSET_MISMATCH, f"this facilitator settles {self.chain.asset} only")
        extra = required.extra or {}
        if (extra.get("name"), extra.get("version")) != (self.chain.name, self.chain.version):
            return Refusal(
                INVALID_REQUIREMENTS,
                f"the token's EIP-712 name and version are {self.chain.name!r},"
                f" {self.chain.version!r}",
            )
        return None

    def check(self, payment: PaymentPayload, required: PaymentRequirements) -> Refusal | None:
        """Every check, local and on chain, in the order the cheapest first."""
        now = int(self.clock())
        found = self._on_this_chain(required) or refusal(
            payment, required, now=now, time_limit=SETTLE_MARGIN
        )
        if found:
            return found
        authorization = payment.payload.authorization
        if self.chain.authorization_used(authorization.from_, authorization.nonce):
            return Refusal(NONCE_USED, "this authorization's nonce is already used on chain")
        balance = self.chain.balance_of(authorization.from_)
        if balance < int(authorization.value):
            return Refusal(
                INSUFFICIENT_FUNDS,
                f"{authorization.from_} holds {balance} of {authorization.value}",
            )
        if reason := self.chain.simulate_transfer(authorization, payment.payload.signature):
            return Refusal(_revert_code(reason), reason)
        return None

    def settle(self, payment: PaymentPayload, required: PaymentRequirements) -> dict[str, Any]:
        payer = payment.payload.authorization.from_
        answer: dict[str, Any] = {"network": required.network, "payer": payer}
        if found := self.check(payment, required):
            return {"success": False, "errorReason": found.reason, "transaction": "", **answer}
        try:
            tx = self.chain.transfer_with_authorization(
                payment.payload.authorization, payment.payload.signature
            )
        except ChainError as exc:
            reason = _revert_code(str(exc))
            return {"success": False, "errorReason": reason, "transaction": "", **answer}
        return {"success": True, "transaction": tx, **answer}


def _revert_code(reason: str) -> str:
    return next(
        (code for text, code in _REVERTS.items() if text in reason), INVALID_TRANSACTION_STATE
    )


async def _request(request: Request) -> tuple[PaymentPayload, PaymentRequirements] | Refusal:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return Refusal(INVALID_PAYLOAD, f"the request is over {MAX_BODY_BYTES} bytes")
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return Refusal(INVALID_PAYLOAD, "the request is not JSON")
    if not isinstance(document, dict):
        return Refusal(INVALID_PAYLOAD, "the request is not a JSON object")
    payment = payment_from_json(document.get("paymentPayload"))
    required = requirements_from_json(document.get("paymentRequirements"))
    if isinstance(payment, Refusal):
        return payment
    if isinstance(required, Refusal):
        return required
    return payment, required


def _refused(found: Refusal, **more: Any) -> JSONResponse:
    return JSONResponse({"invalidReason": found.reason, "detail": found.detail, **more})


def create_app(
    chain: DevChain, *, balances: bool = False, clock: Callable[[], float] = time.time
) -> Starlette:
    facilitator = Facilitator(chain, clock)

    async def verify(request: Request) -> JSONResponse:
        parsed = await _request(request)
        if isinstance(parsed, Refusal):
            return JSONResponse(
                {"isValid": False, "invalidReason": parsed.reason, "detail": parsed.detail},
                status_code=400,
            )
        payment, required = parsed
        payer = payment.payload.authorization.from_
        found = await run_in_threadpool(facilitator.check, payment, required)
        if found:
            return _refused(found, isValid=False, payer=payer)
        return JSONResponse({"isValid": True, "payer": payer})

    async def settle(request: Request) -> JSONResponse:
        parsed = await _request(request)
        if isinstance(parsed, Refusal):
            return JSONResponse(
                {
                    "success": False,
                    "errorReason": parsed.reason,
                    "transaction": "",
                    "network": chain.network,
                    "detail": parsed.detail,
                },
                status_code=400,
            )
        return JSONResponse(await run_in_threadpool(facilitator.settle, *parsed))

    async def supported(request: Request) -> JSONResponse:
        kinds = [
            {"x402Version": 1, "scheme": SCHEME, "network": v1_name(chain.network)},
            {"x402Version": 2, "scheme": SCHEME, "network": chain.network},
        ]
        return JSONResponse({"kinds": kinds})

    async def balance(request: Request) -> JSONResponse:
        address = request.path_params["address"]
        if not ADDRESS.fullmatch(address):
            return JSONResponse({"error": "not an address"}, status_code=400)
        held = await run_in_threadpool(chain.balance_of, address)
        return JSONResponse(
            {"address": address, "balance": held, "asset": chain.asset, "network": chain.network}
        )

    async def rpc(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            document = msgspec.json.decode(body[:MAX_BODY_BYTES])
            ident, method, params = document.get("id"), document["method"], document["params"]
            result = await run_in_threadpool(_rpc, chain, method, params)
        except (msgspec.DecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            error = {"code": -32602, "message": f"not a request this dev RPC answers: {exc}"}
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error})
        except TransactionFailed as exc:
            error = {"code": 3, "message": f"execution reverted: {exc}"}
            return JSONResponse({"jsonrpc": "2.0", "id": ident, "error": error})
        return JSONResponse({"jsonrpc": "2.0", "id": ident, "result": result})

    routes = [
        Route("/verify", verify, methods=["POST"]),
        Route("/settle", settle, methods=["POST"]),
        Route("/supported", supported, methods=["GET"]),
    ]
    if balances:
        routes.append(Route("/balances/{address}", balance, methods=["GET"]))
        routes.append(Route("/rpc", rpc, methods=["POST"]))
    return Starlette(routes=routes)


def _rpc(chain: DevChain, method: str, params: list[Any]) -> Any:
    """The dev RPC's methods (ValueError for any other)."""
    if method == "eth_chainId":
        return hex(chain.chain_id)
    if method == "eth_blockNumber":
        return hex(chain.tester.get_block_by_number("latest")["number"])
    if method == "eth_getBlockByNumber":
        block = chain.tester.get_block_by_number(params[0])
        return {"number": hex(block["number"]), "timestamp": hex(block["timestamp"])}
    if method == "eth_call":
        return chain.eth_call(params[0]["to"], params[0]["data"])
    raise ValueError(f"method {method!r}")
