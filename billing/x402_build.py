"""Compiling billing/contracts/FleetUSD.sol into FleetUSD.json with a pinned solc-js (npm).

`python -m billing.x402_build` rewrites the artefact; `python -m billing.x402_build --check`
recompiles and says whether the committed one is still what the source gives. The fleet
itself only reads the JSON (billing/x402_chain.py): no compiler at run time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parent / "contracts"
SOURCE = CONTRACTS / "FleetUSD.sol"
ARTEFACT = CONTRACTS / "FleetUSD.json"
SOLC_VERSION = "0.8.28"  # solc-js on npm; the pragma in FleetUSD.sol names the same
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"FleetUSD": ["abi", "evm.bytecode.object", "metadata"]}},
}


class CompileError(RuntimeError):
    """solc-js could not be run, or it reported errors."""


def compile_source(source: str, timeout: float = 300) -> dict[str, Any]:
    """The artefact of `source` (FleetUSD.sol's text), compiled by solc-js SOLC_VERSION."""
    npx = shutil.which("npx")
    if npx is None:
        raise CompileError("npx (Node.js and npm) is needed to compile FleetUSD.sol")
    standard = {
        "language": "Solidity",
        "sources": {"FleetUSD.sol": {"content": source}},
        "settings": SETTINGS,
    }
    done = subprocess.run(
        [npx, "--yes", "-p", f"solc@{SOLC_VERSION}", "solcjs", "--standard-json"],
        input=json.dumps(standard),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise CompileError(f"solcjs exited {done.returncode}: {done.stderr[-2000:]}")
    # solcjs may print a line of its own before the JSON document.
    output = json.loads(done.stdout[done.stdout.index("{") :])
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError("\n".join(e.get("formattedMessage", str(e)) for e in errors))
    contract = output["contracts"]["FleetUSD.sol"]["FleetUSD"]
    metadata = json.loads(contract["metadata"])
    return {
        "contractName": "FleetUSD",
        "compiler": f"solc-js {metadata['compiler']['version']}",
        "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
    }


def strip_metadata(bytecode: str) -> str:
    """The code without solc's CBOR metadata trailer (its last two bytes give its length):
    what runs, whatever the source's comments and whitespace."""
    code = bytes.fromhex(bytecode.removeprefix("0x"))
    length = int.from_bytes(code[-2:], "big")
    if length + 2 > len(code):
        return bytecode
    return "0x" + code[: -(length + 2)].hex()


def render(artefact: dict[str, Any]) -> str:
    return json.dumps(artefact, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    fresh = render(compile_source(SOURCE.read_text()))
    if args.check:
        same = ARTEFACT.exists() and ARTEFACT.read_text() == fresh
        print(f"{ARTEFACT.name}: {'up to date' if same else 'differs: run without --check'}")
        return 0 if same else 1
    ARTEFACT.write_text(fresh)
    print(f"{ARTEFACT.name}: written by solc-js {SOLC_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
