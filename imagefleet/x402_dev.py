"""`imagefleet x402-dev`: x402 for development, all local and real. It starts an EVM in this
process (billing/x402_chain.py), deploys FleetUSD, mints 100 USDC to a fresh payer, serves the
facilitator (billing/x402_facilitator.py, plus `GET /balances/{address}`) with uvicorn on
loopback, and then writes `<var>/x402-payer.json`:

    {"privateKey", "address", "chainId", "network", "networkV1", "asset", "payTo",
     "facilitatorUrl", "rpcUrl", "name", "version", "funded"}

and prints one ready line. The file is written once the facilitator answers, so its presence
means ready. The chain lives in memory: a restart is a new chain, token and payer.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

PAYER_FILE = "x402-payer.json"
FUNDED_MICROS = 100_000_000  # 100 USDC
READY = "x402-dev: ready"


def payer_value(var_dir: Path, key: str) -> str | None:
    """One entry of a running x402-dev's payer file (the settings' `dev` defaults)."""
    try:
        return str(json.loads((var_dir / PAYER_FILE).read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_payer(path: Path, document: dict[str, Any]) -> None:
    """Atomically, readable by its owner only (it holds a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(document, out, indent=1)
    os.replace(temporary, path)


def prepare(name: str, version: str, facilitator_url: str) -> tuple[Any, dict[str, Any]]:
    """The chain with its token, a funded payer and a payee: (chain, the payer document)."""
    from eth_account import Account

    from billing.x402 import v1_name
    from billing.x402_chain import DevChain

    chain = DevChain(name, version)
    payer, payee = Account.create(), Account.create()
    chain.mint(payer.address, FUNDED_MICROS)
    document = {
        "privateKey": "0x" + bytes(payer.key).hex(),
        "address": payer.address,
        "chainId": chain.chain_id,
        "network": chain.network,
        "networkV1": v1_name(chain.network),
        "asset": chain.asset,
        "payTo": payee.address,
        "facilitatorUrl": facilitator_url,
        "rpcUrl": f"{facilitator_url}/rpc",
        "name": name,
        "version": version,
        "funded": FUNDED_MICROS,
    }
    return chain, document


def run_dev(
    var_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8402,
    *,
    name: str = "USD Coin",
    version: str = "2",
) -> int:
    """Serve until stopped (SIGINT or SIGTERM); the payer file is removed on the way out."""
    import uvicorn

    from billing.x402_facilitator import create_app

    url = f"http://{host}:{port}"
    payer_file = var_dir / PAYER_FILE
    payer_file.unlink(missing_ok=True)  # a killed run's: its presence must mean this one
    chain, document = prepare(name, version, url)
    config = uvicorn.Config(
        create_app(chain, balances=True),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="off",
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        write_payer(payer_file, document)
        print(
            f"{READY} on {url}: chain {chain.network}, FleetUSD {chain.asset},"
            f" payer {document['address']} holds {FUNDED_MICROS} in {payer_file}",
            flush=True,
        )

    announcer = threading.Thread(target=announce, name="x402-dev-announce", daemon=True)
    announcer.start()
    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again for the handler it found:
    # this one lets the cleanup below run instead of dying there.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda number, frame: None)
    try:
        server.run()
    finally:
        announcer.join(timeout=5)
        payer_file.unlink(missing_ok=True)
    if not server.started:
        print(f"x402-dev: could not serve on {url}", file=sys.stderr)
        return 1
    return 0
