"""Cancellation checkpoints: a running job stops between steps, and before it writes,
once it has been canceled. The runner installs the check; long operations (pipeline
steps) call `checkpoint()` between their steps and stay free of I/O themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The check is told whether the job is about to write (then it must look now); between
# steps it may answer from a recent look.
_check: ContextVar[Callable[[bool], bool] | None] = ContextVar("cancel_check", default=None)


class Canceled(Exception):
    """The job was canceled while it ran: stop, write nothing."""


def checkpoint(before_writing: bool = False) -> None:
    """Raise Canceled if the running job has been canceled (no-op outside a job). Between
    steps a cancel is seen within a moment; `before_writing`, always."""
    check = _check.get()
    if check is not None and check(before_writing):
        raise Canceled


@contextmanager
def watching(canceled: Callable[[bool], bool]) -> Iterator[None]:
    """Run a job's work with `canceled` as its cancellation check."""
    token = _check.set(canceled)
    try:
        yield
    finally:
        _check.reset(token)
