"""A pool child's lease renewer: a small process of its own, so a job's lease stays alive
however long native code (resvg, PDFium) holds the job process's GIL.

Forked by each pool child as it starts (worker/tasks.py), before it runs anything. The
child tells it through a pipe which run holds a lease (`hold`), when that run's end is being
written (`ending`) and when it is over (`drop`); the renewer renews that run's lease every
third of its term with worker/lease.py's script (only that run's own lease, never creating
one) and writes into a page of memory both share when it last did, or that it found the lease
gone. The pipe is its tie to the child: when the child dies (the OOM killer, a segfault,
Celery's SIGKILL at the hard time limit) the pipe ends, the renewer stops at once, so the lease
runs out within FLEET_LEASE_SECONDS, and if a run was under way it records the death
(worker/poison.py) before it exits. It ignores SIGINT and SIGTERM: it goes with its child.
"""

from __future__ import annotations

import logging
import mmap
import os
import select
import signal
import struct
import time
from dataclasses import dataclass
from types import TracebackType

import redis

from imagefleet.redis_conn import connect
from worker import lease, poison

log = logging.getLogger("imagefleet.worker")

# The shared page: the generation of the run it speaks of, then (as a double, monotonic
# clock: the same on the whole machine) when it last renewed that run's lease, then the
# generation whose lease it found taken.
_STATE = struct.Struct("qdq")


@dataclass
class _Run:
    generation: int
    job_id: str
    attempt: int
    seconds: float
    ending: bool = False
    due: float = 0.0  # when to renew next, monotonic


class Renewer:
    """The pool child's handle on its renewer process."""

    def __init__(self, pid: int, pipe: int, state: mmap.mmap) -> None:
        self.pid, self._pipe, self._state = pid, pipe, state
        self.owner = os.getpid()  # the pool child it renews for
        self._generation = 0

    def _send(self, *words: object) -> None:
        os.write(self._pipe, (" ".join(map(str, words)) + "\n").encode())

    def hold(self, job_id: str, attempt: int, seconds: float) -> int:
        self._generation += 1
        self._send("hold", self._generation, job_id, attempt, seconds)
        return self._generation

    def ending(self) -> None:
        self._send("ending")

    def drop(self) -> None:
        self._send("drop")

    def seen(self, generation: int) -> tuple[float, bool]:
        """(when the lease of run `generation` was last renewed or 0, whether it was taken)."""
        current, renewed, taken = _STATE.unpack_from(self._state)
        return (renewed if current == generation else 0.0), taken == generation


class Leased:
    """A run's lease kept by its pool child's renewer (a `lease.Beat`): released after."""

    def __init__(
        self, renewer: Renewer, client: redis.Redis, job_id: str, attempt: int, seconds: float
    ) -> None:
        self.renewer, self.client = renewer, client
        self.job_id, self.attempt, self.seconds = job_id, attempt, seconds
        self.granted = time.monotonic()  # granted just before, in the run's start
        self.released = False
        self._ending = False
        self._generation = 0

    @property
    def taken(self) -> bool:
        return self.renewer.seen(self._generation)[1]

    @property
    def lost(self) -> bool:
        renewed, taken = self.renewer.seen(self._generation)
        return taken or time.monotonic() - max(self.granted, renewed) >= self.seconds

    @property
    def ending(self) -> bool:
        return self._ending

    @ending.setter
    def ending(self, value: bool) -> None:
        if value and not self._ending:
            self.renewer.ending()
        self._ending = value

    def __enter__(self) -> Leased:
        self._generation = self.renewer.hold(self.job_id, self.attempt, self.seconds)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.renewer.drop()  # a renewal already sent finds the lease released, or ours
        if not self.released:
            lease.release(self.client, self.job_id, self.attempt)


_installed: Renewer | None = None


def leased(client: redis.Redis, job_id: str, attempt: int, seconds: float) -> lease.Beat:
    """What keeps a run's lease: this process's renewer if it has one, else a thread."""
    renewer = installed()
    if renewer is None:
        return lease.Heartbeat(client, job_id, attempt, seconds)
    return Leased(renewer, client, job_id, attempt, seconds)


def installed() -> Renewer | None:
    """This process's renewer, if it started one (pool children do)."""
    if _installed is not None and _installed.owner == os.getpid():
        return _installed
    return None


def start(redis_url: str) -> Renewer:
    """Fork this process's renewer (call it before any thread or connection exists)."""
    global _installed
    reader, writer = os.pipe()
    state = mmap.mmap(-1, _STATE.size)  # anonymous and shared with the fork
    pid = os.fork()
    if pid == 0:  # the renewer
        os.closerange(3, reader)  # nothing of the child's (its pipes to Celery) stays open
        os.closerange(reader + 1, os.sysconf("SC_OPEN_MAX"))  # here: only the child's end
        code = 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # A Redis that hangs must not hold the renewer past its child's death.
            client = connect(redis_url, socket_timeout=5, socket_connect_timeout=5)
            _serve(reader, state, client)
        except BaseException:
            log.exception("lease renewer failed")
            code = 1
        finally:
            os._exit(code)
    os.close(reader)
    _installed = Renewer(pid, writer, state)
    return _installed


def stop() -> None:
    """End this process's renewer (its pipe closed, it exits) and reap it: a pool child
    that Celery retires leaves no process behind."""
    global _installed
    renewer = installed()
    if renewer is None:
        return
    _installed = None
    os.close(renewer._pipe)
    deadline = time.monotonic() + 2
    while os.waitpid(renewer.pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.01)


def _serve(pipe: int, state: mmap.mmap, client: redis.Redis) -> None:
    renew = lease.renewer(client)
    run: _Run | None = None
    pending = b""
    while True:
        wait = None if run is None else max(0.0, run.due - time.monotonic())
        if select.select([pipe], [], [], wait)[0]:
            chunk = os.read(pipe, 4096)
            if not chunk:  # the child is gone: stop renewing, and say if a run died with it
                if run is not None and not run.ending:
                    _record_death(client, run)
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                run = _command(line.decode().split(), run, state)
            continue
        if run is not None:
            run = _renew(renew, run, state)


def _command(words: list[str], run: _Run | None, state: mmap.mmap) -> _Run | None:
    if words[0] == "hold":
        generation, job_id, attempt, seconds = words[1:]
        _STATE.pack_into(state, 0, int(generation), 0.0, 0)
        term = float(seconds)
        return _Run(int(generation), job_id, int(attempt), term, due=time.monotonic() + term / 3)
    if words[0] == "ending" and run is not None:
        run.ending = True
        return run
    return None  # drop


def _renew(renew: lease.Renewal, run: _Run, state: mmap.mmap) -> _Run | None:
    sent = time.monotonic()  # the lease runs from when Redis got the renewal: no later
    run.due = sent + run.seconds / 3
    try:
        kept = renew(run.job_id, run.attempt, run.seconds)
    except redis.RedisError as error:  # Redis away: try again next beat
        log.warning("job %s: lease not renewed (%s)", run.job_id, error)
        return run
    if kept:
        _STATE.pack_into(state, 0, run.generation, sent, 0)
        return run
    if not run.ending:  # else the ending transaction released it: nothing was lost
        _STATE.pack_into(state, 0, run.generation, 0.0, run.generation)
        lease.warn_lost(run.job_id, run.attempt)
    return None


def _record_death(client: redis.Redis, run: _Run) -> None:
    log.warning(
        "job %s: the worker child running attempt %d died under it", run.job_id, run.attempt
    )
    try:
        poison.record_kill(client, run.job_id, run.attempt)
    except redis.RedisError as error:
        log.warning("job %s: its worker's death not recorded (%s)", run.job_id, error)
