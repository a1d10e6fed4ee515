"""Money movements, each one atomic in Redis (Lua) and written to the account's ledger.

Per account: `balance` = credits - captures; `held` = the sum of open holds. A hold needs
`balance - held >= amount`, so what is available never goes below zero. A hold is keyed by
job id: capturing or releasing it removes it in the same step, so a job that runs twice is
charged once. Amounts are integer micro-dollars.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

PREFIX = "imagefleet:"

_HOLD = """
if redis.call('HGET', KEYS[1], 'disabled') == '1' then return {-2, 0, 0} end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return {1, tonumber(existing), 0} end
local balance = tonumber(redis.call('HGET', KEYS[1], 'balance') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
local amount = tonumber(ARGV[2])
-- ARGV[5] = '1': an x402 authorization backs the hold, not the balance
if ARGV[5] ~= '1' and balance - held < amount then return {-1, balance, held} end
redis.call('HINCRBY', KEYS[1], 'held', amount)
redis.call('HSET', KEYS[2], ARGV[1], amount)
redis.call('XADD', KEYS[3], '*', 'kind', 'hold', 'job', ARGV[1], 'op', ARGV[3], 'mp', ARGV[4],
           'amount', amount)
return {0, amount, 0}
"""

# Charge min(actual, held); the rest of the hold goes back. No hold: nothing to do, and the
# earlier capture's amount (if any) is returned, so a rerun reports what was charged.
_CAPTURE = """
local held_amount = redis.call('HGET', KEYS[2], ARGV[1])
if not held_amount then return {0, tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')} end
held_amount = tonumber(held_amount)
local charge = math.min(held_amount, tonumber(ARGV[2]))
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'held', -held_amount)
redis.call('HINCRBY', KEYS[1], 'balance', -charge)
redis.call('HINCRBY', KEYS[1], 'captured', charge)
redis.call('HSET', KEYS[4], ARGV[1], charge)
redis.call('XADD', KEYS[3], '*', 'kind', 'capture', 'job', ARGV[1], 'op', ARGV[3], 'mp', ARGV[4],
           'amount', charge)
if held_amount > charge then
  redis.call('XADD', KEYS[3], '*', 'kind', 'release', 'job', ARGV[1], 'op', ARGV[3],
             'mp', ARGV[4], 'amount', held_amount - charge)
end
return {1, charge}
"""

_RELEASE = """
local held_amount = redis.call('HGET', KEYS[2], ARGV[1])
if not held_amount then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'held', -tonumber(held_amount))
redis.call('XADD', KEYS[3], '*', 'kind', 'release', 'job', ARGV[1], 'op', ARGV[2], 'mp', '0',
           'amount', held_amount)
return tonumber(held_amount)
"""

_CREDIT = """
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'credited', ARGV[1])
redis.call('XADD', KEYS[3], '*', 'kind', ARGV[2], 'job', ARGV[3], 'op', '', 'mp', '0',
           'amount', ARGV[1], 'ref', ARGV[4])
return 1
"""


def account_key(account: str) -> str:
    return f"{PREFIX}account:{account}"


def _keys(account: str) -> list[str]:
    return [
        account_key(account),
        f"{PREFIX}holds:{account}",
        f"{PREFIX}ledger:{account}",
        f"{PREFIX}captures:{account}",
    ]


@dataclass(frozen=True)
class HoldRefused:
    balance: int
    held: int
    disabled: bool = False

    @property
    def available(self) -> int:
        return self.balance - self.held


def _refusal(reply: list[int]) -> HoldRefused | None:
    """The hold script's answer: held (None), short of credit, or a disabled account."""
    status, a, b = reply
    if status == -1:
        return HoldRefused(balance=int(a), held=int(b))
    if status == -2:
        return HoldRefused(balance=0, held=0, disabled=True)
    return None


class Ledger:
    def __init__(self, client: redis.Redis, durable: Callable[[], None] | None = None) -> None:
        """`durable`: called after each capture, returns once the capture is safe (on the
        replicas a Sentinel deployment asks for: imagefleet.redis_conn.replicated_within),
        else raises a redis.ConnectionError; the worker then runs the job again, and the
        rerun captures once or finds the capture."""
        self.redis = client
        self.durable = durable
        self._hold = client.register_script(_HOLD)
        self._capture = client.register_script(_CAPTURE)
        self._release = client.register_script(_RELEASE)
        self._credit = client.register_script(_CREDIT)

    def hold(
        self, account: str, job_id: str, amount: int, op: str, megapixels: float
    ) -> HoldRefused | None:
        """Hold `amount` for a job (None), or say why not. Holding twice is a no-op."""
        reply = self._hold(keys=_keys(account), args=[job_id, amount, op, f"{megapixels:.6f}"])
        return _refusal(reply)

    def hold_many(
        self, account: str, holds: list[tuple[str, int, str, float]]
    ) -> list[HoldRefused | None]:
        """`hold` for (job id, amount, op, megapixels) of one account, in order, in one
        round trip (a batch): each sees the holds before it."""
        keys = _keys(account)
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id, amount, op, megapixels in holds:
                self._hold(keys=keys, args=[job_id, amount, op, f"{megapixels:.6f}"], client=pipe)
            return [_refusal(reply) for reply in pipe.execute()]

    def capture(self, account: str, job_id: str, actual: int, op: str, megapixels: float) -> int:
        """Charge min(actual, held) and return it. Without a hold (a rerun) nothing moves and
        the earlier capture's amount is returned (0 if there was none)."""
        _, charged = self._capture(
            keys=_keys(account), args=[job_id, actual, op, f"{megapixels:.6f}"]
        )
        if self.durable is not None:
            self.durable()
        return int(charged)

    def release(self, account: str, job_id: str, op: str) -> int:
        """Give a job's hold back; returns the amount (0 if there was none)."""
        return int(self._release(keys=_keys(account), args=[job_id, op]))

    def captured(self, account: str, job_id: str) -> int:
        """What a job was charged (0 if nothing was captured)."""
        return int(self.redis.hget(f"{PREFIX}captures:{account}", job_id) or 0)

    def credit(self, account: str, amount: int) -> None:
        self._credit(keys=_keys(account), args=[amount, "credit", "", ""])

    def authorize(self, account: str, job_id: str, amount: int, op: str, megapixels: float) -> None:
        """Hold `amount` for a job paid by an x402 authorization: the payer's signed
        transfer, not a balance, backs it, so the capture takes the balance below zero
        until `settled` brings it back."""
        self._hold(keys=_keys(account), args=[job_id, amount, op, f"{megapixels:.6f}", "1"])

    def settled(self, account: str, job_id: str, amount: int, transaction: str) -> None:
        """An x402 authorization was settled on chain: the money the capture counted is in."""
        self._credit(keys=_keys(account), args=[amount, "settlement", job_id, transaction])

    def open_holds(self, account: str) -> dict[str, int]:
        # undecoded replies (the fleet's clients): bytes, where redis-py says bytes | str
        raw = cast(dict[bytes, bytes], self.redis.hgetall(f"{PREFIX}holds:{account}"))
        return {k.decode(): int(v) for k, v in raw.items()}

    def entries(
        self,
        account: str,
        since: float = 0,
        until: float | None = None,
    ) -> list[dict[str, str]]:
        """Ledger entries between two unix times (seconds), oldest first, with `at`."""
        start = str(int(since * 1000))
        end = "+" if until is None else str(int(until * 1000))
        # XRANGE gives every entry its id and fields (None only for XREADGROUP's deleted ones)
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            self.redis.xrange(f"{PREFIX}ledger:{account}", min=start, max=end),
        )
        return [
            {
                "at": str(int(entry_id.decode().split("-")[0]) / 1000),
                **{k.decode(): v.decode() for k, v in fields.items()},
            }
            for entry_id, fields in rows
        ]


def now() -> float:
    return time.time()
