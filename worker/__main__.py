"""`python -m worker worker --pool <name>` runs one pool's Celery worker; `python -m worker
sweeper` runs the sweeper. `imagefleet worker` and `imagefleet sweeper` hand over to these (the CLI
never imports the worker package)."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import redis

from imagefleet import logs
from imagefleet.settings import settings
from jobs.pools import JOB_POOLS, Pool


def run_pool(pool: Pool, concurrency: int | None) -> None:
    if pool is Pool.OCR:  # one Tesseract thread per process: processes scale, OpenMP doesn't
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    from imagefleet.dispatch import app

    cfg = settings()
    logs.setup(cfg.log_level, cfg.log_format)
    env_name = f"FLEET_{pool.name}_CONCURRENCY"
    processes = concurrency or int(
        os.environ.get(env_name) or pool.default_processes(os.cpu_count() or 1)
    )
    reserve = max(0, cfg.share_reserve) if pool in JOB_POOLS else 0
    if pool in JOB_POOLS:  # its share processes count in the pool's fair share
        app.steps["worker"].add(share_registration(pool, processes))
    app.worker_main(
        [
            "worker",
            "-Q",
            pool.value,
            "-n",
            f"{pool.value}-{os.getpid()}@%h",
            "-c",
            str(processes + reserve),
            *(["--pool", "threads"] if pool.waits else []),  # deliveries wait, not compute
            "--loglevel",
            cfg.log_level,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *(["--task-events"] if cfg.task_events else []),  # Flower's view of the tasks
        ]
    )


def share_registration(pool: Pool, processes: int) -> type:
    """A worker bootstep that registers the worker's share processes in the pool's fair
    share (jobs/fairshare.py) from its main process's timer, and withdraws them on stop."""
    from celery import bootsteps

    from imagefleet.redis_conn import connect
    from jobs import fairshare
    from jobs.store import ACTIVE

    class ShareRegistration(bootsteps.StartStopStep):
        requires = {"celery.worker.components:Timer"}

        def start(self, worker: Any) -> None:
            self.client = connect(settings().redis_url)
            self.node = worker.hostname
            self.renew()
            self.timer = worker.timer.call_repeatedly(fairshare.RENEW_EVERY, self.renew)

        def renew(self, alive: bool = True) -> None:
            try:
                fairshare.register(self.client, pool.value, self.node, processes, ACTIVE, alive)
            except redis.RedisError as exc:  # Redis away: the next renewal tries again
                logging.getLogger("imagefleet.worker").warning("share not registered: %s", exc)

        def stop(self, worker: Any) -> None:
            self.timer.cancel()
            self.renew(alive=False)

    return ShareRegistration


def run_sweeper() -> None:
    from worker.sweeper import run_forever

    cfg = settings()
    logs.setup(cfg.log_level, cfg.log_format)
    run_forever(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m worker")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("worker")
    p.add_argument("--pool", type=Pool, choices=list(Pool), required=True)
    p.add_argument("--concurrency", type=int)
    sub.add_parser("sweeper")
    args = parser.parse_args()
    if args.command == "worker":
        run_pool(args.pool, args.concurrency)
    else:
        run_sweeper()


if __name__ == "__main__":
    main()
