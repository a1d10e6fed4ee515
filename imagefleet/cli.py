"""The `imagefleet` command."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

from imagefleet import logs
from imagefleet.client_cli import add_commands as add_client_commands
from imagefleet.settings import SettingError, settings
from jobs.pools import Pool

# What the `server` extra brings (import names). A plain `pip install imagefleet` has the
# client commands; the server commands import these lazily, inside their functions.
SERVER_MODULES = (
    "celery",
    "redis",
    "minio",
    "starlette",
    "uvicorn",
    "PIL",
    "numpy",
    "cv2",
    "simplejpeg",
    "tesserocr",
    "pyppeteer",
    "prometheus_client",
)
NEEDS_SERVER = "this command needs the server: pip install 'imagefleet[server]'"


def server_missing() -> bool:
    return any(importlib.util.find_spec(name) is None for name in SERVER_MODULES)


def needs_server(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """A server command: one clear line and exit 2 where only the client is installed."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        if server_missing():
            print(NEEDS_SERVER, file=sys.stderr)
            return 2
        return command(args)

    return run


@needs_server
def cmd_up(args: argparse.Namespace) -> int:
    from imagefleet.fleet import up

    return up(settings())


@needs_server
def cmd_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    cfg = settings()
    logs.setup(cfg.log_level, cfg.log_format)
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host or cfg.host,
        port=args.port or cfg.port,
        log_level=cfg.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's lines go through our (text or JSON) handler
        ws="none",  # no websockets route; pyppeteer pins an old websockets package
        http="gateway.server:GatewayProtocol",  # httptools with header limits and timeouts
    )
    return 0


def _hand_over(*argv: str) -> int:
    """Become `python -m worker ...` (same pid, so whoever started us can stop it), once
    the settings read well (a bad value is one line here, not a traceback there)."""
    settings()
    os.execv(sys.executable, [sys.executable, "-m", "worker", *argv])


@needs_server
def cmd_worker(args: argparse.Namespace) -> int:
    extra = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    return _hand_over("worker", "--pool", args.pool, *extra)


@needs_server
def cmd_sweeper(args: argparse.Namespace) -> int:
    return _hand_over("sweeper")


@needs_server
def cmd_sweep(args: argparse.Namespace) -> int:
    import time

    from storage import open_store

    cfg = settings()
    removed = open_store(cfg.storage_url).sweep(time.time() - cfg.output_ttl_seconds)
    print(f"removed {removed} job output(s) older than {cfg.output_ttl_seconds} s")
    return 0


@needs_server
def cmd_x402_dev(args: argparse.Namespace) -> int:
    from imagefleet.x402_dev import run_dev

    cfg = settings()
    var_dir = Path(args.var_dir).resolve() if args.var_dir else cfg.var_dir
    return run_dev(
        var_dir, args.host, args.port, name=cfg.x402_token_name, version=cfg.x402_token_version
    )


def cmd_docs(args: argparse.Namespace) -> int:
    from imagefleet.docs import operations_markdown, update_readme
    from imagefleet.settings_doc import write_reference

    if args.config:
        changed = write_reference(Path(args.config))
        print(f"{args.config}: configuration reference {'updated' if changed else 'up to date'}")
    if args.readme:
        changed = update_readme(Path(args.readme))
        print(f"{args.readme}: operation reference {'updated' if changed else 'up to date'}")
    if not (args.readme or args.config):
        print(operations_markdown())
    return 0


def add_server_account_commands(sub: argparse._SubParsersAction) -> None:
    """`accounts` and `billing` talk to Redis: without the server extra they stay listed and
    answer with the one line."""
    if not server_missing():
        from imagefleet.accounts_cli import add_commands

        add_commands(sub)
        return
    for name, text in (
        ("accounts", "create and manage accounts and API keys"),
        ("billing", "billing checks"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=needs_server(lambda args: 0))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagefleet", description="Self-hosted image-processing job fleet."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the local fleet: Redis, gateway, one worker per pool")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("gateway", help="run the HTTP gateway (uvicorn)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser("worker", help="run a Celery worker for one pool")
    p.add_argument("--pool", choices=[pool.value for pool in Pool], required=True)
    p.add_argument("--concurrency", type=int, help="processes (default: env or per pool)")
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser(
        "sweeper",
        help="resend work whose message was lost (a job queued or"
        " running too long, an undelivered webhook) and release orphaned holds",
    )
    p.set_defaults(func=cmd_sweeper)
    add_server_account_commands(sub)
    add_client_commands(sub)

    p = sub.add_parser("retention", help="delete job outputs past FLEET_OUTPUT_TTL_SECONDS")
    p.add_argument("action", choices=["sweep"])
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "x402-dev",
        help="a local EVM with a USDC-like token, a funded payer and an x402 facilitator",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8402)
    p.add_argument("--var-dir", help="where x402-payer.json goes (default FLEET_VAR_DIR)")
    p.set_defaults(func=cmd_x402_dev)

    p = sub.add_parser("docs", help="print the operation reference (from the registry)")
    p.add_argument("--readme", help="rewrite the generated section of this README instead")
    p.add_argument("--config", help="write the configuration reference (docs/configuration.md)")
    p.set_defaults(func=cmd_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingError as exc:  # a bad FLEET_* value: one line naming it, not a traceback
        print(f"imagefleet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
