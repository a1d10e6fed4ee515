"""What each payer's wallet has authorized and not yet settled, in Redis: the x402 hold.

A signed authorization is only a promise: the funds stay in the payer's wallet until it is
settled, so two authorizations from one wallet can both pass the facilitator's `/verify`
(each alone fits the balance) and only one settle. Admission therefore claims the
authorization's nonce and adds its amount to the wallet's open total in one Lua script,
refusing when the open total plus this amount exceeds the balance read from the chain. An
authorization leaves the total when it is settled or refused, and by itself at its
`validBefore` (after which it can never be settled): so a failed job's stays counted until
then. Amounts are atomic units (micros); balances past 2**53 count as 2**53 (Lua's doubles).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

NONCES = "imagefleet:x402:nonce:"  # + asset:payer:nonce -> the job it bought
OPEN = "imagefleet:x402:open:"  # + asset:payer -> hash nonce -> "amount:validBefore"
EXACT = 2**53

# KEYS: the nonce's claim, the wallet's open authorizations.
# ARGV: the claim's value, its ttl, nonce, amount, validBefore, balance, now.
# -> {0, open before} claimed; {1, 0} the nonce is taken; {2, open} over the balance.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, 0} end
local open, now = 0, tonumber(ARGV[7])
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  local amount, before = string.match(entries[i + 1], '^(%d+):(%d+)$')
  if before == nil or tonumber(before) <= now then
    redis.call('HDEL', KEYS[2], entries[i])
  else
    open = open + tonumber(amount)
  end
end
if open + tonumber(ARGV[4]) > tonumber(ARGV[6]) then return {2, open} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4] .. ':' .. ARGV[5])
local keep = tonumber(ARGV[5]) - now + 60
if redis.call('TTL', KEYS[2]) < keep then redis.call('EXPIRE', KEYS[2], keep) end
return {0, open}
"""


def claim_suffix(asset: str, payer: str, nonce: str) -> str:
    """`asset:payer:nonce` in lower case: one authorization's name in Redis keys."""
    return f"{asset.lower()}:{payer.lower()}:{nonce.lower()}"


def _wallet_key(asset: str, payer: str) -> str:
    return f"{OPEN}{asset.lower()}:{payer.lower()}"


@dataclass(frozen=True)
class Authorization:
    """One authorization as the wallet ledger sees it."""

    asset: str
    payer: str
    nonce: str
    amount: int
    valid_before: int

    @property
    def claim_key(self) -> str:
        return NONCES + claim_suffix(self.asset, self.payer, self.nonce)

    @property
    def wallet_key(self) -> str:
        return _wallet_key(self.asset, self.payer)


@dataclass(frozen=True)
class Claim:
    """The outcome: `claimed`, else the nonce was taken (`reused`) or the balance is short;
    `open` is what the wallet had authorized and not settled before this one."""

    claimed: bool
    reused: bool
    open: int


def claim(redis: Redis, paid: Authorization, balance: int, now: int, value: str) -> Claim:
    """Claim `paid`'s nonce (stored as `value`) and count it against `balance`, atomically."""
    ttl = max(60, paid.valid_before - now + 3600)
    status, open_ = redis.eval(
        _CLAIM,
        2,
        paid.claim_key,
        paid.wallet_key,
        value,
        ttl,
        paid.nonce.lower(),
        paid.amount,
        paid.valid_before,
        min(balance, EXACT),
        now,
    )
    return Claim(claimed=status == 0, reused=status == 1, open=int(open_))


def close(redis: Redis, asset: str, payer: str, nonce: str) -> None:
    """This authorization no longer holds the wallet's funds: settled or refused."""
    redis.hdel(_wallet_key(asset, payer), nonce.lower())


def unclaim(redis: Redis, paid: Authorization) -> None:
    """Admission failed after the claim: the authorization is unused and may be sent again."""
    pipe = redis.pipeline()
    pipe.delete(paid.claim_key)
    pipe.hdel(paid.wallet_key, paid.nonce.lower())
    pipe.execute()
