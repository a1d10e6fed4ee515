"""The development chain: an EVM in this process (eth-tester on py-evm) with FleetUSD deployed
from its compiled artefact (billing/contracts/FleetUSD.json).

Every state change is a real transaction in a real block: minting, and settling a payment
with EIP-3009 `transferWithAuthorization`, sent and paid for by the operator (the deployer,
one of eth-tester's funded accounts), so the payer needs no ether. One lock serialises the
chain: eth-tester is not thread-safe, and a settlement's check and send must not interleave.

The chain's clock follows `clock` (the wall clock): py-evm stamps a block with the time its
parent was mined, so an idle chain's next block would be minutes behind. Before a transfer
is dry-run or sent, an empty block is mined at the current time if the chain lags.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_abi import decode, encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_checksum_address

from billing.x402 import Authorization

ARTEFACT = Path(__file__).resolve().parent / "contracts" / "FleetUSD.json"
DEPLOY_GAS = 3_000_000
CALL_GAS = 300_000
TRANSFER_WITH_AUTHORIZATION = (
    "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"
)


class ChainError(RuntimeError):
    """A transaction the chain refused: the message is the contract's revert reason."""


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _calldata(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + (_selector(signature) + encode(types, values)).hex()


def load_artefact(path: Path = ARTEFACT) -> dict[str, Any]:
    artefact: dict[str, Any] = json.loads(path.read_text())
    return artefact


class DevChain:
    """A fresh chain with FleetUSD deployed; `name` and `version` make its EIP-712 domain."""

    def __init__(
        self, name: str = "USD Coin", version: str = "2", clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        backend = PyEVMBackend()
        self.tester = EthereumTester(backend)  # tests look inside too
        self.chain_id: int = backend.chain.chain_id
        self.operator: str = self.tester.get_accounts()[0]
        self.name, self.version = name, version
        constructor = encode(["string", "string"], [name, version]).hex()
        receipt = self._send({"data": load_artefact()["bytecode"] + constructor}, DEPLOY_GAS)
        self.asset: str = to_checksum_address(receipt["contract_address"])

    @property
    def network(self) -> str:
        """The chain's x402 network name: CAIP-2 `eip155:<chain id>`."""
        return f"eip155:{self.chain_id}"

    def _send(self, transaction: dict[str, Any], gas: int) -> dict[str, Any]:
        with self._lock:
            tx_hash = self.tester.send_transaction(
                {"from": self.operator, "gas": gas, **transaction}
            )
            receipt: dict[str, Any] = self.tester.get_transaction_receipt(tx_hash)
        if receipt["status"] != 1:
            raise ChainError(f"transaction {tx_hash} reverted")
        return receipt

    def _call(self, data: str, to: str | None = None) -> bytes:
        with self._lock:
            out = self.tester.call({"from": self.operator, "to": to or self.asset, "data": data})
        return bytes.fromhex(out.removeprefix("0x"))

    def eth_call(self, to: str, data: str) -> str:
        """A read-only call of any contract (the dev RPC's `eth_call`), its output as 0x hex."""
        return "0x" + self._call(data, to_checksum_address(to)).hex()

    def timestamp(self) -> int:
        """The latest block's time (it can run ahead of the clock: one second per block)."""
        with self._lock:
            return int(self.tester.get_block_by_number("latest")["timestamp"])

    def keep_time(self) -> None:
        """Mine an empty block at the clock's time if the chain is behind it, so what runs
        next sees the time of now, not of the last block (an idle chain's clock stands still)."""
        with self._lock:
            now = int(self._clock())
            if now > int(self.tester.get_block_by_number("pending")["timestamp"]):
                self.tester.time_travel(now)

    def mint(self, to: str, value: int) -> str:
        """Mint `value` atomic units to `to` (the operator only); the transaction hash."""
        data = _calldata("mint(address,uint256)", ["address", "uint256"], [to, value])
        return str(self._send({"to": self.asset, "data": data}, CALL_GAS)["transaction_hash"])

    def balance_of(self, address: str) -> int:
        data = _calldata("balanceOf(address)", ["address"], [address])
        return int(decode(["uint256"], self._call(data))[0])

    def authorization_used(self, authorizer: str, nonce: str) -> bool:
        data = _calldata(
            "authorizationState(address,bytes32)",
            ["address", "bytes32"],
            [authorizer, bytes.fromhex(nonce.removeprefix("0x"))],
        )
        return bool(decode(["bool"], self._call(data))[0])

    def _transfer_data(self, authorization: Authorization, signature: str) -> str:
        return _calldata(
            TRANSFER_WITH_AUTHORIZATION,
            ["address", "address", "uint256", "uint256", "uint256", "bytes32", "bytes"],
            [
                to_checksum_address(authorization.from_),
                to_checksum_address(authorization.to),
                int(authorization.value),
                int(authorization.valid_after),
                int(authorization.valid_before),
                bytes.fromhex(authorization.nonce.removeprefix("0x")),
                bytes.fromhex(signature.removeprefix("0x")),
            ],
        )

    def simulate_transfer(self, authorization: Authorization, signature: str) -> str | None:
        """Why the token would refuse this transfer now (its revert reason), or None."""
        self.keep_time()
        try:
            self._call(self._transfer_data(authorization, signature))
        except TransactionFailed as exc:
            return str(exc) or "reverted"
        return None

    def transfer_with_authorization(self, authorization: Authorization, signature: str) -> str:
        """Settle: send the signed transfer (a real transaction); its hash. ChainError with
        the revert reason if the token refuses it (nothing is mined for a refused one)."""
        data = self._transfer_data(authorization, signature)
        with self._lock:  # the dry run and the send as one step
            if reason := self.simulate_transfer(authorization, signature):
                raise ChainError(reason)
            receipt = self._send({"to": self.asset, "data": data}, CALL_GAS)
        return str(receipt["transaction_hash"])

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        with self._lock:
            found: dict[str, Any] = self.tester.get_transaction_receipt(tx_hash)
        return found
