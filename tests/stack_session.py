"""The session's compose stack, behind tests/conftest.py's fleet_stack fixture: started
once for tests/test_stack.py and tests/test_stack_faults.py, its figures printed past
pytest's capture, and removed after the last test that uses it."""

from __future__ import annotations

import time

import pytest

from deploy import stack
from tests.stack_harness import Say, Stack, skip_reason, start_stack

# The stack as compose.yaml has it, with a faster sweeper and private webhook receivers.
SETTINGS = {
    "FLEET_WEBHOOK_ALLOW_PRIVATE": "1",
    "FLEET_SWEEP_INTERVAL": "2",
    "FLEET_REQUEUE_AFTER_SECONDS": "30",
    "FLEET_WEBHOOK_BASE_DELAY": "0.5",
    "FLEET_MAX_ATTEMPTS": "10",
}


def say_to(request: pytest.FixtureRequest) -> Say:
    """Print past pytest's capture: the figures are the point of the run."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(text: str) -> None:
        if capture is None:
            print(text, flush=True)
            return
        with capture.global_and_fixture_disabled():
            print(text, flush=True)

    return say


_OPEN: list[tuple[Stack, float, Say]] = []  # the session's stack, until it is removed


def open_session_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Stack:
    """The stack of tests/test_stack.py and tests/test_stack_faults.py, started once per
    session (three worker-cpu containers, SETTINGS); skips where no engine can run."""
    say = say_to(request)
    reason = skip_reason()
    if reason:
        say(f"test_stack: skipped: {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    running = start_stack(
        tmp_path_factory.mktemp("stack"), say, scale={"worker-cpu": 3}, settings=SETTINGS
    )
    _OPEN.append((running, started, say))
    assert running.build is not None
    refs = [running.env[image.env] for image in stack.IMAGES]
    sizes = ", ".join(f"{ref.split(':')[0]} {stack.image_size(ref) / 1e6:.0f} MB" for ref in refs)
    say(f"stack: images {running.build.line() or 'all present'}; sizes {sizes}")
    say(
        f"stack: engine {running.timings['engine']:.0f} s, build {running.timings['build']:.0f} s,"
        f" `up` to /readyz {running.timings['up']:.0f} s (project {running.project})"
    )
    return running


def close_session_stack() -> None:
    """Remove the session's stack (once: after the last test that uses it, or at the end)."""
    while _OPEN:
        running, started, say = _OPEN.pop()
        left = running.down(say)
        say(
            f"stack: removed in {time.monotonic() - started:.0f} s since start"
            + (f"; LEFT BEHIND: {left}" if left else "; nothing of it is left")
        )
        assert not left, f"left behind: {left}"
