"""Native draws in a process of their own: a deadline and a memory limit that hold however
long the native code keeps the GIL (resvg and PDFium hold it while they draw, DESIGN §8).

`draw(...)` forks; the fork lowers its address-space limit (RLIMIT_AS) to what it has plus
the allowance, dies with its parent (PR_SET_PDEATHSIG), draws, and writes the frame into a
page of memory the job's process mapped for it (its size is known: the raster the quote
billed). The job's process waits outside the GIL, looking for a cancel every LOOK seconds:
past the deadline the fork is SIGKILLed and the job fails TIMEOUT; a fork that ran out of
memory (a MemoryError, or native code aborting on a failed allocation) fails the job
IMAGE_TOO_LARGE; a FleetError the draw raised (an unreadable file) is the job's error.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import resource
import select
import signal
import time
from collections.abc import Callable

import numpy as np

from jobs.errors import ErrorCode, FleetError
from worker.cancel import checkpoint
from worker.picture import Frame

LOOK = 0.25  # seconds between looks for a cancel while the fork draws
_PR_SET_PDEATHSIG = 1
_OUT_OF_MEMORY = 3  # the fork's exit status when an allocation failed in Python


def draw(
    render: Callable[[], Frame],
    shape: tuple[int, int, int],
    seconds: float,
    allowance: int,
    what: str,
) -> Frame:
    """`render()`'s frame (uint8, `shape`), drawn in a fork given `seconds` and `allowance`
    bytes of address space beyond its parent's."""
    out = mmap.mmap(-1, int(np.prod(shape)))  # anonymous and shared with the fork
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fork: never returns
        os.close(reader)
        _draw_in_fork(render, shape, out, writer, allowance)
    os.close(writer)
    try:
        report = _wait(pid, reader, seconds, what)
    finally:
        os.close(reader)
    status = os.waitpid(pid, 0)[1]
    if report.get("ok"):
        return np.frombuffer(out, np.uint8).reshape(shape)  # the page lives with the frame
    if "code" in report:
        raise FleetError(ErrorCode(str(report["code"])), str(report["message"]))
    if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) == _OUT_OF_MEMORY:
        raise FleetError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"{what} needs more than {allowance >> 20} MB of memory to draw",
        )
    raise RuntimeError(f"{what}: the drawing process failed ({report.get('error', status)})")


def _wait(pid: int, reader: int, seconds: float, what: str) -> dict[str, object]:
    """The fork's report (empty if it died silently); past the deadline, or canceled or
    out of time meanwhile (an exception here), the fork is killed first."""
    deadline = time.monotonic() + seconds
    done = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise FleetError(
                    ErrorCode.TIMEOUT, f"{what} took longer than {seconds:g} s to draw"
                )
            if select.select([reader], [], [], min(LOOK, left))[0]:
                text = b""
                while chunk := os.read(reader, 65536):
                    text += chunk
                done = True
                return json.loads(text) if text else {}
            checkpoint()  # a cancel stops the draw too
    finally:
        if not done:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _draw_in_fork(
    render: Callable[[], Frame],
    shape: tuple[int, int, int],
    out: mmap.mmap,
    writer: int,
    allowance: int,
) -> None:
    code = 0
    report: dict[str, object]
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # never outlives the job
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _address_space() + allowance
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        frame = render()
        np.frombuffer(out, np.uint8).reshape(shape)[...] = frame
        report = {"ok": True}
    except FleetError as exc:
        report = {"code": exc.code.value, "message": exc.message}
    except MemoryError:
        report, code = {}, _OUT_OF_MEMORY
    except BaseException as exc:  # reported, then the parent raises
        report, code = {"error": type(exc).__name__}, 1
    try:
        os.write(writer, json.dumps(report).encode())
    finally:
        os._exit(code)


def _address_space() -> int:
    """This process's mapped bytes (VmSize): the fork's starting point."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")
