"""Client-side commands: `imagefleet submit | status | upload | batch`, over the HTTP API.
`submit --pay-with-key` pays with x402 instead of an API key (imagefleet/client_pay_cli.py)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import httpx

from imagefleet.client import ApiError, Client, JobResult
from imagefleet.client_batch import guarded, run_batches
from imagefleet.client_pay_cli import (
    add_payer_option,
    download_paid,
    payer_key,
    paying_client,
    payment_line,
)
from imagefleet.settings import gateway_url
from jobs.media import READ_EXTENSIONS, extension

URL_HELP = (
    "fleet URL (default: FLEET_PUBLIC_URL, else http://FLEET_HOST:FLEET_PORT as the gateway"
    " reads them: http://127.0.0.1:8080)"
)


def _client(args: argparse.Namespace, payer: str | None = None) -> Client:
    """The client of a command: with an API key, or (`payer`) paying with x402."""
    url = args.url or gateway_url()
    if payer is not None:
        return paying_client(url, args, payer)
    key = args.key or os.environ.get("FLEET_API_KEY")
    if not key:
        key_file = Path(os.environ.get("FLEET_VAR_DIR", "var")) / "dev-api-key"
        if not key_file.exists():
            raise SystemExit(
                "imagefleet: no API key: pass --key, set FLEET_API_KEY, or run"
                f" next to a fleet ({key_file} not found)"
            )
        key = key_file.read_text().strip()
    return Client(url, key)


def _unreachable(exc: httpx.TransportError) -> str:
    """One line for a fleet that does not answer: where, and why in the OS's words."""
    try:
        url = exc.request.url
        where = f"{url.scheme}://{url.netloc.decode()}"
    except RuntimeError:  # an error raised before it had a request
        where = "the fleet's URL"
    reason = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)).strip() or type(exc).__name__
    return (
        f"imagefleet: cannot reach the fleet at {where}: {reason[:1].lower()}{reason[1:]};"
        " is `make run` running?"
    )


def reaching(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A client command whose fleet does not answer: one line and exit 1, no traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            print(_unreachable(exc), file=sys.stderr)
            return 1

    return run


def _money(micros: int) -> str:
    return f"${Decimal(micros) / 1_000_000:,.6f}"


def _line(job: JobResult) -> str:
    """One line per job: id, status, operation, then output/size or the error code."""
    parts = [job.id, job.status, job.operation]
    if job.ok:
        res = job.result or {}
        if job.output:
            parts.append(f"-> {job.output}")
        if "width" in res and "height" in res:
            parts.append(f"({res['width']}x{res['height']})")
        parts.append(_money(job.billing.get("charged_micros", 0)))
    elif job.error:
        parts.append(f"{job.error.get('code')}: {job.error.get('message')}")
    return " ".join(parts)


def _api_error(exc: ApiError) -> int:
    print(f"imagefleet: {exc.code}: {exc.message}", file=sys.stderr)
    return 1


def cmd_submit(args: argparse.Namespace) -> int:
    spec = json.loads(Path(args.job).read_text())
    payer = payer_key(args)
    with _client(args, payer) as client:
        try:
            # Downloading needs the output; a payment is shown once the job is settled.
            wait = args.wait or args.download is not None or payer is not None
            job = client.submit(spec, args.idempotency_key, wait=60 if wait else 0)
            if wait and (not job.done or job.settling):
                job = client.wait(job.id, timeout=args.timeout)
            print(json.dumps(job.raw, indent=2) if args.json else _line(job))
            if payer is not None:
                print(payment_line(job), file=sys.stderr if args.json else sys.stdout)
            if job.status == "failed":
                print(f"failed: {(job.error or {}).get('code')}", file=sys.stderr)
                return 1
            if args.download is not None and job.ok and job.output:
                if payer is not None:
                    download_paid(job, args.download)
                else:
                    client.download(job.output, args.download)
                print(f"downloaded {job.output} -> {args.download}", file=sys.stderr)
        except ApiError as exc:
            return _api_error(exc)
    return 0 if job.status != "canceled" else 1


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            job = client.get(args.id)
        except ApiError as exc:
            return _api_error(exc)
    print(json.dumps(job.raw, indent=2) if args.json else _line(job))
    return 1 if job.status == "failed" else 0


def cmd_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    with _client(args) as client:
        try:
            reply = client.upload(path, args.key_name or path.name)
        except ApiError as exc:
            return _api_error(exc)
    print(f"uploaded {path} -> {reply['key']} ({reply['bytes']} bytes)")
    return 0


class _Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, else one plain line per
    file (no carriage returns in logs or pipes); safe to tick from threads."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total, self.width, self.done = total, width, 0
        self.tty = sys.stderr.isatty()
        self._lock = threading.Lock()
        if self.tty:
            self._draw()

    def tick(self, line: str) -> None:
        with self._lock:
            self.done += 1
            if self.tty:
                self._draw()
            else:
                print(f"[{self.done}/{self.total}] {line}", file=sys.stderr, flush=True)

    def _draw(self) -> None:
        filled = self.width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total}")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _variants(path: str) -> list[dict[str, Any]]:
    """A `--variants` file: a JSON list of variants, or an object with `variants`. Each
    `output` names the file made per input: `{stem}` and `{name}` are the input's stem and
    file name; an output with neither is prefixed `{stem}-` (`320.avif` -> `a-320.avif`)."""
    loaded = json.loads(Path(path).read_text())
    variants = loaded["variants"] if isinstance(loaded, dict) else loaded
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise SystemExit(f"imagefleet: {path}: expected a list of variants (JSON objects)")
    return variants


def _quality(text: str) -> int | str:
    return text if text == "auto" else int(text)


def _variant_key(output: str, key: str) -> str:
    where = PurePosixPath(key)
    if "{stem}" not in output and "{name}" not in output:
        output = "{stem}-" + output
    return str(where.parent / output.format(stem=where.stem, name=where.name))


def _batch_spec(args: argparse.Namespace, key: str) -> dict[str, Any]:
    if args.variants is not None:
        made = [{**v, "output": _variant_key(str(v.get("output", "")), key)} for v in args.variants]
        return {"operation": "variants", "input": key, "variants": made}
    spec: dict[str, Any] = {"operation": args.op, "input": key}
    for name in ("width", "height", "fit", "format", "quality"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    return spec


def _save(client: Client, job: JobResult, path: Path, out: Path) -> Path:
    """Save a job's output image, or its JSON result (metadata, dominant-color, ocr, ...),
    under the input's whole file name: `a.gif` -> `a.gif.webp`, `a.gif.json`. Names in one
    directory are unique, so no output ever overwrites another. A variants job's outputs
    are saved under their keys' file names (`a-320.avif`), named after the input already."""
    variants = (job.result or {}).get("variants") if job.ok else None
    if variants:
        for variant in variants:
            client.download(variant["output"], out / PurePosixPath(variant["output"]).name)
        return out / PurePosixPath(variants[-1]["output"]).name
    if job.output:
        target = out / f"{path.name}{PurePosixPath(job.output).suffix}"
        client.download(job.output, target)
    else:
        target = out / f"{path.name}.json"
        target.write_text(json.dumps(job.result, indent=2) + "\n")
    return target


Outcome = tuple[JobResult | ApiError, Path | None]  # the job (or error) and the saved file


def _upload_one(client: Client, args: argparse.Namespace, path: Path) -> str | ApiError:
    key = str(PurePosixPath(args.prefix) / path.name)

    def upload() -> str:
        client.upload(path, key)
        return key

    return guarded(upload)


def _finish_one(client: Client, args: argparse.Namespace, path: Path, job_id: str) -> Outcome:
    """The ended job and (with --out) its saved output."""
    job = guarded(lambda: client.get(job_id))
    if isinstance(job, ApiError) or not (args.out and job.ok):
        return job, None
    saved = guarded(lambda: _save(client, job, path, Path(args.out)))
    return (saved, None) if isinstance(saved, ApiError) else (job, saved)


def _failure(outcome: JobResult | ApiError) -> str | None:
    """`CODE: message` of a failed file, None when it succeeded."""
    if isinstance(outcome, ApiError):
        return f"{outcome.code}: {outcome.message}"
    if outcome.ok:
        return None
    error = outcome.error or {}
    return f"{error.get('code', outcome.status.upper())}: {error.get('message', '')}"


def cmd_batch(args: argparse.Namespace) -> int:
    # Every format the fleet reads, by the extensions of its format table.
    files = sorted(
        p for p in Path(args.dir).iterdir() if p.is_file() and extension(p.name) in READ_EXTENSIONS
    )
    if not files:
        print(f"imagefleet: no images in {args.dir}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    outcomes: dict[Path, JobResult | ApiError] = {}
    progress = _Progress(len(files))

    def done(path: Path, outcome: JobResult | ApiError, saved: Path | None = None) -> None:
        outcomes[path] = outcome
        failure = _failure(outcome)
        progress.tick(
            f"{path.name}: failed {failure}"
            if failure
            else f"{path.name}: succeeded" + (f" -> {saved}" if saved else "")
        )

    with _client(args) as client, ThreadPoolExecutor(max(1, args.concurrency)) as pool:
        # httpx.Client is thread-safe: the threads share one connection pool.
        keys: dict[Path, str] = {}
        uploaded = pool.map(lambda p: _upload_one(client, args, p), files)
        for path, key in zip(files, uploaded, strict=True):
            if isinstance(key, ApiError):
                done(path, key)
            else:
                keys[path] = key
        specs = {path: _batch_spec(args, key) for path, key in keys.items()}
        submitted = run_batches(client, specs, args.batch_size, args.timeout)
        futures = {}
        for path, job in submitted.items():
            if isinstance(job, ApiError):
                done(path, job)
            else:
                futures[pool.submit(_finish_one, client, args, path, job)] = path
        for future in as_completed(futures):
            done(futures[future], *future.result())
    failures = {
        path: failure
        for path, outcome in sorted(outcomes.items())
        if (failure := _failure(outcome))
    }
    jobs = [o for o in outcomes.values() if isinstance(o, JobResult)]
    succeeded = [j for j in jobs if j.ok]
    megapixels = sum(j.billing.get("megapixels") or 0 for j in succeeded)
    cost = sum(j.billing.get("charged_micros", 0) for j in jobs)
    print(f"{'succeeded':<22} {len(succeeded)}")
    print(f"{'failed':<22} {len(failures)}")
    for path, failure in failures.items():
        print(f"  {path.name}: {failure}")
    print(f"{'megapixels (billed)':<22} {megapixels:.2f}")
    print(f"{'cost':<22} {_money(cost)}")
    return 1 if failures else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--url", help=URL_HELP)
    conn.add_argument("--key", help="API key (default: FLEET_API_KEY or var/dev-api-key)")

    p = sub.add_parser("submit", parents=[conn], help="submit a job spec from a JSON file")
    p.add_argument("job", help="JSON file with the job spec")
    p.add_argument("--wait", action="store_true", help="wait until the job ends")
    p.add_argument("--download", metavar="PATH", help="save the output here (implies --wait)")
    p.add_argument("--idempotency-key")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
    p.add_argument("--json", action="store_true", help="print the whole job object")
    add_payer_option(p)
    p.set_defaults(func=reaching(cmd_submit))

    p = sub.add_parser("status", parents=[conn], help="show one job")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the whole job object")
    p.set_defaults(func=reaching(cmd_status))

    p = sub.add_parser("upload", parents=[conn], help="upload a file into your namespace")
    p.add_argument("file")
    p.add_argument("key_name", nargs="?", metavar="KEY", help="object key (default: file name)")
    p.set_defaults(func=reaching(cmd_upload))

    p = sub.add_parser("batch", parents=[conn], help="run one job per image of a directory")
    p.add_argument("dir")
    p.add_argument("--op", default="resize", help="operation (default resize)")
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--fit", choices=["contain", "cover", "fill", "inside", "outside"])
    p.add_argument("--format", choices=["png", "jpeg", "webp", "avif", "jxl", "auto"])
    p.add_argument("--quality", type=_quality, help="1-100, or auto")
    p.add_argument(
        "--variants",
        metavar="FILE",
        type=_variants,
        help="run one `variants` job per image from this JSON list of variants (each output"
        " may use {stem} and {name}; else it is prefixed {stem}-); --op and the resize"
        " options are then unused",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="save every output here, named after the whole"
        " input file name (a.gif -> a.gif.webp; JSON results -> a.gif.json)",
    )
    p.add_argument("--prefix", default="batch", help="key prefix for uploads (default batch)")
    p.add_argument("--concurrency", type=int, default=4, help="uploads and downloads at once")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="jobs per POST /v1/batches (default 1000, the fleet's default limit)",
    )
    p.add_argument(
        "--timeout", type=float, default=300, help="seconds each batch may take (default 300)"
    )
    p.set_defaults(func=reaching(cmd_batch))
