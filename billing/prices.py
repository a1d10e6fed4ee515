"""Billing rules: how an operation is priced. Amounts are integer micro-dollars."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_PER_MP_MICROS = 300  # $0.0003 per input megapixel, the image-tools spec's default


@dataclass(frozen=True)
class PerMegapixel:
    micros: int = DEFAULT_PER_MP_MICROS

    def price(self, megapixels: float) -> int:
        return math.ceil(self.micros * megapixels)


@dataclass(frozen=True)
class Flat:
    micros: int

    def price(self, megapixels: float) -> int:
        return self.micros


BillingRule = PerMegapixel | Flat


def describe(rule: BillingRule) -> dict[str, object]:
    """The rule as `GET /v1/operations` shows it."""
    if isinstance(rule, PerMegapixel):
        return {"kind": "per_megapixel", "per_mp_micros": rule.micros}
    return {"kind": "flat", "flat_micros": rule.micros}
