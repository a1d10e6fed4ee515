"""`imagefleet up`: the local fleet (Redis child, gateway, one worker per pool) in one command."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import redis

from billing.accounts import Accounts, new_api_key
from imagefleet import procs
from imagefleet.redact import redacted
from imagefleet.redis_conn import connect
from imagefleet.settings import Settings
from imagefleet.x402_dev import PAYER_FILE
from jobs.pools import Pool
from storage import open_store

DEV_TENANT = "dev"


class ChildExited(procs.StopWaiting):
    pass


RESTARTS_PER_MINUTE = 5  # more than this and the child is broken, not unlucky: stop


class Supervisor:
    """The fleet's children, each restarted when it exits, unless it keeps exiting."""

    def __init__(self) -> None:
        self.children: list[procs.Child] = []
        self.commands: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        self.restarts: dict[str, list[float]] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.commands[name] = (argv, env)
        self.children.append(procs.spawn(name, argv, env))

    def revive(self) -> None:
        """Restart every child that exited; ChildExited if one exits too often."""
        for index, child in enumerate(self.children):
            if child.alive():
                continue
            recent = [t for t in self.restarts.get(child.name, []) if t > time.monotonic() - 60]
            if len(recent) >= RESTARTS_PER_MINUTE:
                raise ChildExited(f"{child.name} exited {len(recent) + 1} times in a minute")
            _say(f"{child.name} exited with {child.process.returncode}; restarting it")
            child.stop(grace=0)  # reap it and kill what is left of its process group
            argv, env = self.commands[child.name]
            self.children[index] = procs.spawn(child.name, argv, env)
            self.restarts[child.name] = [*recent, time.monotonic()]

    def stop(self) -> None:
        for child in reversed(self.children):  # workers and gateway first, Redis last
            child.stop()


def _write_private(path: Path, text: str) -> None:
    """A file only its owner reads (made so before anything is written to it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text + "\n")


def ensure_dev_key(cfg: Settings, client: redis.Redis) -> str:
    """The dev account's API key from var/dev-api-key (made once); the account is created
    with FLEET_DEV_CREDIT_MICROS of credit the first time. Its webhook signing secret goes
    to var/dev-webhook-secret, for receivers to verify deliveries with."""
    path = cfg.dev_key_file
    if path.exists():
        key = path.read_text().strip()
    else:
        key = new_api_key()
        _write_private(path, key)
    account = Accounts(client).ensure(DEV_TENANT, key, cfg.dev_credit_micros)
    _write_private(cfg.dev_webhook_secret_file, account.webhook_secret)
    return key


def _say(message: str) -> None:
    print(f"imagefleet: {redacted(message)}", flush=True)  # no credential in a URL printed


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def up(cfg: Settings) -> int:
    cfg.var_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FLEET_VAR_DIR=str(cfg.var_dir), FLEET_STORAGE_URL=cfg.storage_url)
    env.setdefault("FLEET_WEBHOOK_ALLOW_LOOPBACK", "1")  # a local fleet calls local receivers
    fleet = Supervisor()
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    me = [sys.executable, "-m", "imagefleet.cli"]
    try:
        redis_url = os.environ.get("FLEET_REDIS_URL")
        if not redis_url:
            port = procs.free_port()
            fleet.spawn("redis", procs.redis_argv(port, cfg.var_dir / "redis"))
            redis_url = f"redis://127.0.0.1:{port}/0"
            procs.wait_until(lambda: procs.port_open(port), 20, "redis")
            # `imagefleet accounts ...` run beside the fleet finds this Redis through it.
            (cfg.var_dir / "redis-url").write_text(redis_url + "\n")
            _say(f"redis on {redis_url} (append-only file in {_relative(cfg.var_dir / 'redis')})")
        env["FLEET_REDIS_URL"] = redis_url
        client = connect(redis_url)  # plain Redis or the sentinels' master
        procs.wait_until(lambda: bool(client.ping()), 20, "redis")
        key = ensure_dev_key(cfg, client)

        if cfg.x402 == "dev":  # a local chain, token, payer and facilitator (x402_dev.py)
            payer_file = cfg.var_dir / PAYER_FILE
            payer_file.unlink(missing_ok=True)  # its presence must mean this run's
            port = procs.free_port()
            fleet.spawn("x402-dev", [*me, "x402-dev", "--port", str(port)], env)
            procs.wait_until(lambda: stopping or payer_file.exists(), 90, "x402-dev")
            _say(f"x402 (dev): facilitator on 127.0.0.1:{port}; payer in {_relative(payer_file)}")
        fleet.spawn("gateway", [*me, "gateway"], env)
        for pool in Pool:
            fleet.spawn(f"worker-{pool}", [*me, "worker", "--pool", pool], env)
        fleet.spawn("sweeper", [*me, "sweeper"], env)

        def ready() -> bool:
            for child in fleet.children:
                if not child.alive():
                    raise ChildExited(
                        f"{child.name} exited with {child.process.returncode}"
                        " while starting (see its output above)"
                    )
            return stopping or procs.http_ok(f"{cfg.public_url}/readyz")

        procs.wait_until(ready, 90, "the fleet")
        if not stopping:
            key_file = _relative(cfg.dev_key_file)
            _say(
                f"ready on {cfg.public_url} (storage {cfg.storage_url}); dev key in {key_file};"
                f' try: curl -H "Authorization: Bearer $(cat {key_file})"'
                f" {cfg.public_url}/v1/operations   (Ctrl-C stops)"
            )
        del key
        store, next_sweep = open_store(cfg.storage_url), time.monotonic()
        while not stopping:
            fleet.revive()
            if time.monotonic() >= next_sweep:  # output retention, hourly
                removed = store.sweep(time.time() - cfg.output_ttl_seconds)
                if removed:
                    _say(f"retention: removed {removed} job output(s)")
                next_sweep = time.monotonic() + 3600
            time.sleep(0.3)
        return 0
    except (TimeoutError, ChildExited) as exc:
        _say(f"{exc}; stopping")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan anyone
        _say("stopping")
        fleet.stop()
        if not os.environ.get("FLEET_REDIS_URL"):
            (cfg.var_dir / "redis-url").unlink(missing_ok=True)
        _say("stopped")
