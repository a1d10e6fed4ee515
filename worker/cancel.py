"""Cancellation checkpoints: a running job stops between steps, and before it writes,
once it has been canceled. The runner installs the check; long operations (pipeline
steps) call `checkpoint()` between their steps and stay free of I/O themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_check: ContextVar[Callable[[], bool] | None] = ContextVar("cancel_check", default=None)


class Canceled(Exception):
    """The job was canceled while it ran: stop, write nothing."""


def checkpoint() -> None:
    """Raise Canceled if the running job has been canceled (no-op outside a job)."""
    check = _check.get()
    if check is not None and check():
        raise Canceled


@contextmanager
def watching(canceled: Callable[[], bool]) -> Iterator[None]:
    """Run a job's work with `canceled` as its cancellation check."""
    token = _check.set(canceled)
    try:
        yield
    finally:
        _check.reset(token)
