"""Price rules: data each operation declares (jobs/registry.py); billing/ and the gateway read
them. Amounts are integer micro-dollars."""

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


def configured(name: str, default: BillingRule, overrides: dict[str, int]) -> BillingRule:
    """The operator's price for an operation (FLEET_PRICE_<OP>_PER_MP_MICROS or
    FLEET_PRICE_<OP>_FLAT_MICROS, collected in Settings.prices), else the default."""
    if isinstance(default, PerMegapixel) and f"{name}.per_mp_micros" in overrides:
        return PerMegapixel(overrides[f"{name}.per_mp_micros"])
    if isinstance(default, Flat) and f"{name}.flat_micros" in overrides:
        return Flat(overrides[f"{name}.flat_micros"])
    return default


def describe(rule: BillingRule) -> dict[str, object]:
    """The rule as `GET /v1/operations` shows it."""
    if isinstance(rule, PerMegapixel):
        return {"kind": "per_megapixel", "per_mp_micros": rule.micros}
    return {"kind": "flat", "flat_micros": rule.micros}
