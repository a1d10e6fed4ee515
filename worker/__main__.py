"""`python -m worker worker --pool <name>` runs one pool's Celery worker; `python -m worker
sweeper` runs the sweeper. `imagefleet worker` and `imagefleet sweeper` hand over to these (the CLI
never imports the worker package)."""

from __future__ import annotations

import argparse
import os

from imagefleet import logs
from imagefleet.settings import settings
from jobs.pools import Pool


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
    app.worker_main(
        [
            "worker",
            "-Q",
            pool.value,
            "-n",
            f"{pool.value}-{os.getpid()}@%h",
            "-c",
            str(processes),
            *(["--pool", "threads"] if pool.waits else []),  # deliveries wait, not compute
            "--loglevel",
            cfg.log_level,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *(["--task-events"] if cfg.task_events else []),  # Flower's view of the tasks
        ]
    )


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
