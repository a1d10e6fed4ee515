"""How a setting is declared and read: a `Settings` field made by `setting(...)` carries its
variable, default (a value, or one `Derived` from the settings before it) and doc; `parse`
reads a variable's text as the field's type. The declarations themselves are in
imagefleet/settings.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_origin


class SettingError(ValueError):
    """A variable set to something its setting cannot read: the message names both."""


@dataclass(frozen=True)
class Derived:
    """A default computed from the settings declared before it (`values`, by field name)."""

    compute: Callable[[dict[str, Any]], Any]
    text: str  # the default in words, for the reference


@dataclass(frozen=True)
class Setting:
    env: str
    default: Any  # a value, or Derived
    doc: str
    note: str = ""  # beside the default in the reference, e.g. "(compose sets 1)"
    then: Callable[[Any], Any] | None = None  # applied to the value read or defaulted
    zero_is_default: bool = False  # 0 stands for the (derived) default too
    read: Callable[[Mapping[str, str]], Any] | None = None  # not one variable (prices)


def setting(env: str, default: Any, doc: str, **more: Any) -> Any:
    """A `Settings` field: read from `env`, `default` when unset or empty."""
    return field(metadata={"setting": Setting(env, default, doc, **more)})


def parse(kind: Any, name: str, raw: str) -> Any:
    """A variable's text as its setting's type; a clear error naming both if it is not one."""
    if kind is bool:
        return raw == "1"  # flags: "1" is on, anything else off
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise SettingError(f"{name} must be {expected}, got {raw!r}") from None
    if get_origin(kind) is tuple:
        return tuple(raw.split())  # words, space-separated
    return kind(raw)  # str, Path
