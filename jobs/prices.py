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


# Flat-priced reads that decode pixels cover this many megapixels for their flat price
# (FLEET_FLAT_PRICE_MAX_MEGAPIXELS): the decode of a 100 MP PNG is seconds of CPU.
DEFAULT_FLAT_CEILING_MEGAPIXELS = 16.0


@dataclass(frozen=True)
class Flat:
    micros: int
    # A read that decodes the image (dominant-color, placeholder; metadata when it decodes
    # frames): each megapixel it reads over `ceiling` costs this much on top. None: flat at
    # any size (ocr, from-html, bounded by their own limits).
    over_ceiling_per_mp: int | None = None
    ceiling: float = DEFAULT_FLAT_CEILING_MEGAPIXELS  # set from the settings by `configured`

    @property
    def metered(self) -> bool:
        """Whether the price depends on the megapixels read (then the quote measures them)."""
        return self.over_ceiling_per_mp is not None

    def price(self, megapixels: float) -> int:
        if self.over_ceiling_per_mp is None:
            return self.micros
        over = max(0.0, megapixels - self.ceiling)
        return self.micros + math.ceil(self.over_ceiling_per_mp * over)


BillingRule = PerMegapixel | Flat


def configured(
    name: str,
    default: BillingRule,
    overrides: dict[str, int],
    ceiling: float = DEFAULT_FLAT_CEILING_MEGAPIXELS,
) -> BillingRule:
    """The operator's price for an operation (FLEET_PRICE_<OP>_PER_MP_MICROS or
    FLEET_PRICE_<OP>_FLAT_MICROS, collected in Settings.prices), else the default. A flat
    read's `ceiling` is FLEET_FLAT_PRICE_MAX_MEGAPIXELS and PER_MP its price over it."""
    if isinstance(default, PerMegapixel):
        return PerMegapixel(overrides.get(f"{name}.per_mp_micros", default.micros))
    over = default.over_ceiling_per_mp
    if over is not None:
        over = overrides.get(f"{name}.per_mp_micros", over)
    return Flat(overrides.get(f"{name}.flat_micros", default.micros), over, ceiling)


def describe(rule: BillingRule) -> dict[str, object]:
    """The rule as `GET /v1/operations` shows it."""
    if isinstance(rule, PerMegapixel):
        return {"kind": "per_megapixel", "per_mp_micros": rule.micros}
    if rule.over_ceiling_per_mp is None:
        return {"kind": "flat", "flat_micros": rule.micros}
    return {
        "kind": "flat",
        "flat_micros": rule.micros,
        "flat_up_to_megapixels": rule.ceiling,
        "over_per_mp_micros": rule.over_ceiling_per_mp,
    }
