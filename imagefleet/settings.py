"""All configuration, read from the environment in one place. Every setting is declared once,
as a field of `Settings`: its variable, default and one-line doc beside its type, which says
how the variable is parsed. docs/configuration.md is generated from these declarations
(imagefleet/settings_doc.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

from imagefleet.setting_fields import Derived, Setting, SettingError, parse, setting
from imagefleet.x402_dev import payer_value

__all__ = [
    "Derived",
    "Setting",
    "SettingError",
    "Settings",
    "gateway_url",
    "listen_url",
    "load_settings",
    "settings",
]

MiB = 1024 * 1024
DAY = 24 * 3600
DEFAULT_OCR_LANGS = "eng spa fra deu ita por nld pol rus chi_sim"


def _local_redis(values: dict[str, Any]) -> str:
    """The Redis of a running `imagefleet up` (it writes var/redis-url), else localhost."""
    path = values["var_dir"] / "redis-url"
    return path.read_text().strip() if path.exists() else "redis://127.0.0.1:6379/0"


def listen_url(host: str, port: int) -> str:
    """`http://host:port` of a gateway listening there, as this machine reaches it: a
    wildcard address (every interface) on loopback, an IPv6 address in brackets."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _prices(env: Mapping[str, str]) -> dict[str, int]:
    """FLEET_PRICE_CONTACT_SHEET_PER_MP_MICROS=400 -> {"contact-sheet.per_mp_micros": 400}."""
    prices = {}
    for name, value in env.items():
        for suffix in ("_PER_MP_MICROS", "_FLAT_MICROS"):
            if name.startswith("FLEET_PRICE_") and name.endswith(suffix) and value != "":
                op = name[len("FLEET_PRICE_") : -len(suffix)].lower().replace("_", "-")
                prices[f"{op}.{suffix[1:].lower()}"] = parse(int, name, value)
    return prices


def _x402_mode(value: str) -> str:
    if value.lower() not in ("off", "dev", "on"):
        raise SettingError(f"FLEET_X402 must be off, dev or on, got {value!r}")
    return value.lower()


def _x402_dev(key: str, otherwise: str, text: str) -> Derived:
    """With FLEET_X402=dev, what `imagefleet x402-dev` wrote to var/x402-payer.json."""
    return Derived(
        lambda v: (v["x402"] == "dev" and payer_value(v["var_dir"], key)) or otherwise, text
    )


@dataclass(frozen=True, kw_only=True)
class Settings:
    # Where state lives and which services hold it (order matters: later defaults use these).
    var_dir: Path = setting(
        "FLEET_VAR_DIR",
        Path("var"),
        "Local state: Redis data, objects, `dev-api-key`, `dev-webhook-secret`.",
        then=Path.resolve,
    )
    redis_url: str = setting(
        "FLEET_REDIS_URL",
        Derived(_local_redis, "`redis://127.0.0.1:6379/0`; `imagefleet up` starts its own"),
        "Redis for the Celery broker, job records and the ledger, or"
        " `redis+sentinel://s1:26379,s2:26379/<master>/<db>`; set it and `up` uses that Redis"
        " instead of starting one.",
    )
    broker_url: str = setting(
        "FLEET_BROKER_URL",
        Derived(lambda v: v["redis_url"], "`FLEET_REDIS_URL`"),
        "The Celery broker, if not Redis (e.g. `amqp://guest:guest@rabbitmq:5672//`).",
    )
    storage_url: str = setting(
        "FLEET_STORAGE_URL",
        Derived(lambda v: f"file://{v['var_dir'] / 'objects'}", "`file://<FLEET_VAR_DIR>/objects`"),
        "Object store: `file:///dir` or"
        " `s3://[KEY:SECRET@]host:port/bucket[?secure=true&region=r&public=url]`"
        " (bucket made if missing).",
    )
    # The gateway.
    host: str = setting("FLEET_HOST", "127.0.0.1", "Address the gateway listens on.")
    port: int = setting("FLEET_PORT", 8080, "Port the gateway listens on.")
    public_url: str = setting(
        "FLEET_PUBLIC_URL",
        Derived(
            lambda v: listen_url(v["host"], v["port"]),
            "`http://FLEET_HOST:FLEET_PORT` (`0.0.0.0`: `127.0.0.1`)",
        ),
        "Base of the `url` links in job results (a trailing `/` is dropped); the fleet the"
        " client commands call (their `--url` wins).",
        then=lambda url: url.rstrip("/"),
    )
    rate_limit: float = setting(
        "FLEET_RATE_LIMIT", 50.0, "Requests per second per API key (bursts of twice that)."
    )
    max_event_streams_per_key: int = setting(
        "FLEET_MAX_EVENT_STREAMS_PER_KEY",
        16,
        "Open event streams per API key in each gateway process (an in-memory count; `429`"
        " past it).",
    )
    max_wait_seconds: int = setting("FLEET_MAX_WAIT_SECONDS", 60, "The longest `?wait=`.")
    sync_timeout: float = setting(
        "FLEET_SYNC_TIMEOUT", 60.0, "Seconds `POST /v1/image/{op}` waits before answering `202`."
    )
    signed_url_seconds: int = setting(
        "FLEET_SIGNED_URL_SECONDS", 3600, "Lifetime of upload and output URLs, in seconds."
    )
    # What a request may hold of the gateway before it is answered (docs/deployment.md).
    max_header_bytes: int = setting(
        "FLEET_MAX_HEADER_BYTES",
        64 * 1024,
        "Largest request line and headers of one request; more is `431 HEADERS_TOO_LARGE`,"
        " answered before the rest is read.",
    )
    header_timeout: float = setting(
        "FLEET_HEADER_TIMEOUT_SECONDS",
        10.0,
        "Seconds a connection has to send a request's headers (from its first byte, or from"
        " connecting); then it is closed.",
    )
    body_timeout: float = setting(
        "FLEET_BODY_TIMEOUT_SECONDS",
        120.0,
        "Seconds the gateway waits, in all, for the bytes of one request body; then"
        " `400 VALIDATION_ERROR` and the connection is closed.",
    )
    max_buffered_bytes: int = setting(
        "FLEET_MAX_BUFFERED_BYTES",
        64 * MiB,
        "Request-body bytes one gateway process holds in memory at once, all requests"
        " together (each takes its declared length, or its limit, before reading; keyless"
        " x402 requests at most half); past it `503 UNAVAILABLE` with `Retry-After`.",
    )
    # Limits on what one job may read and create.
    max_megapixels: float = setting(
        "FLEET_MAX_MEGAPIXELS",
        100.0,
        "Largest image a job may read or create (width x height x frames / 1e6): each input"
        " page or animation, each step's output.",
    )
    max_work_megapixels: float = setting(
        "FLEET_MAX_WORK_MEGAPIXELS",
        Derived(lambda v: 4 * v["max_megapixels"], "4 x `FLEET_MAX_MEGAPIXELS`"),
        "All the images one job creates, added up (a 10-step pipeline of 100 MP steps is 1,000).",
        note="(also when 0)",
        zero_is_default=True,
    )
    max_frames: int = setting("FLEET_MAX_FRAMES", 1000, "Most frames read from an animated input.")
    max_variants: int = setting(
        "FLEET_MAX_VARIANTS",
        16,
        "Most outputs of one `variants` job (at most 256); more is `400 VALIDATION_ERROR`.",
        then=lambda n: max(1, min(256, n)),
    )
    max_inline_bytes: int = setting(
        "FLEET_MAX_INLINE_BYTES", 4 * MiB, "Largest inline (base64) input, decoded."
    )
    max_object_bytes: int = setting(
        "FLEET_MAX_OBJECT_BYTES", 50 * MiB, "Largest upload through `PUT /v1/objects`."
    )
    # Jobs: retention, queues, time limits, redelivery.
    job_ttl_seconds: int = setting(
        "FLEET_JOB_TTL_SECONDS", 7 * DAY, "How long job records are kept, in seconds."
    )
    output_ttl_seconds: int = setting(
        "FLEET_OUTPUT_TTL_SECONDS",
        7 * DAY,
        "How long default outputs (`jobs/<id>/...`) are kept; `imagefleet up` sweeps hourly,"
        " elsewhere run `imagefleet retention sweep` from cron. Outputs you named are yours"
        " and kept.",
    )
    max_queue_depth: int = setting(
        "FLEET_MAX_QUEUE_DEPTH",
        10_000,
        "Backpressure: while a pool's queue is this deep, submissions get `503 UNAVAILABLE`"
        " with `Retry-After`.",
    )
    max_batch_jobs: int = setting(
        "FLEET_MAX_BATCH_JOBS",
        1_000,
        "Jobs one `POST /v1/batches` may hold; a longer batch gets `400 VALIDATION_ERROR`.",
    )
    soft_time_limit: int = setting(
        "FLEET_SOFT_TIME_LIMIT",
        0,
        "Seconds a job may run before it fails `TIMEOUT`.",
        note="(each operation's own, most 60 s)",
    )
    hard_time_limit: int = setting(
        "FLEET_HARD_TIME_LIMIT",
        0,
        "Seconds a job may run before its worker child is killed.",
        note="(each operation's own, most 90 s)",
    )
    max_attempts: int = setting(
        "FLEET_MAX_ATTEMPTS",
        3,
        "Runs of one job (worker crashes redeliver it) before `WORKER_LOST`.",
    )
    requeue_after_seconds: float = setting(
        "FLEET_REQUEUE_AFTER_SECONDS",
        300.0,
        "The sweeper resends a job queued this long (or running this long with no live lease)"
        " and an undelivered webhook idle this long, and releases holds of jobs that were"
        " never recorded.",
    )
    sweep_interval: float = setting(
        "FLEET_SWEEP_INTERVAL", 5.0, "Seconds between the sweeper's passes."
    )
    lease_seconds: float = setting(
        "FLEET_LEASE_SECONDS",
        10.0,
        "A running job's lease: its worker renews it every third of this; a job whose lease"
        " ran out (its worker died) is resent at the sweeper's next pass.",
    )
    share_reserve: int = setting(
        "FLEET_SHARE_RESERVE",
        1,
        "Processes each job pool's worker runs beyond its concurrency, which no one tenant may"
        " fill: while one tenant has its share of a pool, another tenant's job starts at once"
        " (docs/guarantees.md, fair share). `0`: none (it waits for the next end).",
    )
    task_events: bool = setting(
        "FLEET_TASK_EVENTS",
        False,
        "Workers send Celery task events, so Flower lists the tasks (a few Redis messages per"
        " job).",
        note="(compose sets `1`)",
    )
    # Redis durability: how many replicas hold a write before it counts.
    redis_min_replicas: int = setting(
        "FLEET_REDIS_MIN_REPLICAS",
        Derived(
            lambda v: int(v["redis_url"].startswith("redis+sentinel://")),
            "`1` on a `redis+sentinel://` URL, else `0`",
        ),
        "Replicas that must hold a new job (and a capture) before it counts (`WAIT`).",
    )
    redis_wait_ms: int = setting(
        "FLEET_REDIS_WAIT_MS",
        1000,
        "How long the gateway waits for them before `503`, and the worker per round, in ms.",
    )
    # Encoders.
    avif_speed: int = setting(
        "FLEET_AVIF_SPEED",
        8,
        "AVIF encoder speed (0 slow/small ... 10 fast); 8 is ~4x faster than 6 for ~4% more bytes.",
    )
    webp_method: int = setting("FLEET_WEBP_METHOD", 4, "WebP encoder effort (0 fast ... 6 small).")
    # OCR.
    ocr_langs: tuple[str, ...] = setting(
        "FLEET_OCR_LANGS",
        tuple(DEFAULT_OCR_LANGS.split()),
        "The OCR language roster; other languages are refused with `422 UNSUPPORTED_LANG`.",
    )
    tessdata_dir: str = setting(
        "FLEET_TESSDATA_DIR",
        "/usr/share/tesseract-ocr/5/tessdata",
        "Tesseract language data (Debian's `tesseract-ocr-*` packages).",
    )
    ocr_api_cache: int = setting(
        "FLEET_OCR_API_CACHE",
        4,
        "Initialised Tesseract languages kept warm per OCR worker process (at least 1).",
        then=lambda n: max(1, n),
    )
    ocr_max_pages: int = setting(
        "FLEET_OCR_MAX_PAGES",
        50,
        "Most pages of a multi-page input one OCR job reads (more: `IMAGE_TOO_LARGE`).",
    )
    # Rendering HTML (from-html).
    max_html_bytes: int = setting(
        "FLEET_MAX_HTML_BYTES", 1 * MiB, "Largest `from-html` document (`422 HTML_TOO_LARGE`)."
    )
    chromium_path: str = setting(
        "FLEET_CHROMIUM", "/usr/bin/chromium", "The browser the render pool drives."
    )
    render_timeout: float = setting(
        "FLEET_RENDER_TIMEOUT",
        20.0,
        "Seconds one render may take before the browser is relaunched.",
    )
    vector_timeout: float = setting(
        "FLEET_VECTOR_TIMEOUT",
        55.0,
        "Seconds an SVG or PDF page may draw, in a process of its own (killed past it, or at"
        " the job's soft time limit if that comes first: the job fails `TIMEOUT`; past its"
        " memory allowance: `IMAGE_TOO_LARGE`). `0` draws in the job's process, stopped only"
        " by the job's hard time limit.",
    )
    render_max_side: int = setting(
        "FLEET_RENDER_MAX_SIDE",
        16384,
        "Largest `from-html` viewport, clip or full-page side in px (a viewport or clip past"
        " it, or past `FLEET_MAX_MEGAPIXELS`, is a `400`; such a full page fails"
        " `IMAGE_TOO_LARGE`).",
        note="(Chromium's texture limit)",
    )
    # Billing.
    prices: dict[str, int] = setting(
        "FLEET_PRICE_<OP>_<KIND>_MICROS",
        {},
        "Operator prices in micros, `<KIND>` `PER_MP` or `FLAT`, e.g."
        " `FLEET_PRICE_RESIZE_PER_MP_MICROS=400` (see [billing.md](billing.md)).",
        note="the spec's prices",
        read=_prices,
    )
    flat_price_max_megapixels: float = setting(
        "FLEET_FLAT_PRICE_MAX_MEGAPIXELS",
        16.0,
        "Megapixels a flat-priced read that decodes (`dominant-color`, `placeholder`,"
        " `metadata` of frames) covers; each one over it costs 100 micro-$ more"
        " (`FLEET_PRICE_<OP>_PER_MP_MICROS`; see [billing.md](billing.md)).",
    )
    dev_credit_micros: int = setting(
        "FLEET_DEV_CREDIT_MICROS",
        1_000_000_000,
        "The dev account's starting credit, in micros.",
        note="($1,000)",
    )
    # x402: pay per call with a signed stablecoin transfer instead of an API key's credit.
    x402: str = setting(
        "FLEET_X402",
        "off",
        "x402 payments (`X-PAYMENT`): `off`, `on` (verified and settled by"
        " `FLEET_X402_FACILITATOR_URL`) or `dev` (`imagefleet up` runs `imagefleet x402-dev`:"
        " a local chain, token, funded payer and facilitator).",
        then=_x402_mode,
    )
    x402_pay_to: str = setting(
        "FLEET_X402_PAY_TO",
        _x402_dev("payTo", "", "none; `dev`: the local payee"),
        "The address x402 payments go to.",
    )
    x402_network: str = setting(
        "FLEET_X402_NETWORK",
        _x402_dev("network", "base", "`base`; `dev`: the local chain"),
        "The chain: an x402 network name (`base`, `base-sepolia`) or `eip155:<chain id>`.",
    )
    x402_asset: str = setting(
        "FLEET_X402_ASSET",
        _x402_dev(
            "asset",
            "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
            "`0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913` (USDC on Base); `dev`: the local token",
        ),
        "The EIP-3009 token paid in (6 decimals: one unit is one micro).",
    )
    x402_facilitator_url: str = setting(
        "FLEET_X402_FACILITATOR_URL",
        _x402_dev("facilitatorUrl", "", "none; `dev`: the local facilitator"),
        "The x402 facilitator that verifies and settles payments (`/verify`, `/settle`).",
    )
    x402_rpc_url: str = setting(
        "FLEET_X402_RPC_URL",
        _x402_dev("rpcUrl", "", "none; `dev`: the local chain's"),
        "The chain's JSON-RPC endpoint: the gateway reads a payer's token balance there"
        " (`eth_call`) to count what the wallet has authorized and not settled against it.",
    )
    x402_token_name: str = setting(
        "FLEET_X402_TOKEN_NAME",
        "USD Coin",
        "The token's EIP-712 domain name (USDC on Base Sepolia: `USDC`).",
    )
    x402_token_version: str = setting(
        "FLEET_X402_TOKEN_VERSION", "2", "The token's EIP-712 domain version."
    )
    x402_rate_limit: float = setting(
        "FLEET_X402_RATE_LIMIT",
        10.0,
        "Keyless (x402) job requests per second per client address (bursts of twice that):"
        " they have no key to limit by. Behind a proxy, let uvicorn trust its"
        " `X-Forwarded-For` (`FORWARDED_ALLOW_IPS`), else all callers share one address.",
    )
    # Webhooks.
    webhook_attempts: int = setting("FLEET_WEBHOOK_ATTEMPTS", 6, "Webhook tries.")
    webhook_base_delay: float = setting(
        "FLEET_WEBHOOK_BASE_DELAY",
        5.0,
        "The first webhook retry delay in seconds (doubling, with jitter).",
    )
    webhook_timeout: float = setting(
        "FLEET_WEBHOOK_TIMEOUT",
        10.0,
        "Seconds one webhook attempt may take in all: connect, send and the whole answer (a"
        " receiver that answers a byte at a time is cut off at it); then it is retried.",
    )
    webhook_tenant_slots: int = setting(
        "FLEET_WEBHOOK_TENANT_SLOTS",
        4,
        "Webhook attempts one account may have under way at once, across the fleet; its"
        " other deliveries wait their turn, so slow receivers never hold every slot of the"
        " `webhooks` pool.",
        then=lambda n: max(1, n),
    )
    webhook_redeliveries: int = setting(
        "FLEET_WEBHOOK_REDELIVERIES",
        5,
        "`POST /v1/jobs/{id}/webhook/redeliver` calls one job takes; past it `429 RATE_LIMITED`.",
    )
    webhook_redeliver_rate: float = setting(
        "FLEET_WEBHOOK_REDELIVER_RATE",
        0.5,
        "Redeliveries per second per account (bursts of twice that, at least one); past it"
        " `429 RATE_LIMITED` with `Retry-After`.",
    )
    webhook_allow_loopback: bool = setting(
        "FLEET_WEBHOOK_ALLOW_LOOPBACK",
        False,
        "Let webhooks call loopback addresses.",
        note="(`imagefleet up` sets `1`)",
    )
    webhook_allow_private: bool = setting(
        "FLEET_WEBHOOK_ALLOW_PRIVATE",
        False,
        "Let webhooks call private addresses (never loopback or link-local).",
    )
    # Logging.
    log_level: str = setting(
        "FLEET_LOG_LEVEL", "INFO", "Log level of every process.", then=str.upper
    )
    log_format: str = setting(
        "FLEET_LOG_FORMAT",
        "text",
        "`json`: one JSON object per line, with `job_id` on every line logged for a job.",
        note="(compose sets `json`)",
        then=str.lower,
    )

    @property
    def dev_key_file(self) -> Path:
        return self.var_dir / "dev-api-key"

    @property
    def dev_webhook_secret_file(self) -> Path:
        return self.var_dir / "dev-webhook-secret"


# The declarations, in order, with each field's type resolved (annotations are strings here).
_TYPES = get_type_hints(Settings)
SETTINGS: dict[str, tuple[Setting, Any]] = {
    f.name: (f.metadata["setting"], _TYPES[f.name]) for f in fields(Settings)
}


def _value(name: str, env: Mapping[str, str], values: dict[str, Any]) -> Any:
    """One setting read from `env`, or its default (derived from `values`, those before it)."""
    decl, kind = SETTINGS[name]
    raw = env.get(decl.env, "")
    if decl.read is not None:
        value = decl.read(env)
    elif raw != "":
        value = parse(kind, decl.env, raw)
    else:
        value = None
    if value is None or (decl.zero_is_default and value == 0):
        default = decl.default
        value = default.compute(values) if isinstance(default, Derived) else default
    return decl.then(value) if decl.then is not None else value


def gateway_url(environ: Mapping[str, str] | None = None) -> str:
    """The gateway's URL for a client on this machine: FLEET_PUBLIC_URL, else the one that
    FLEET_HOST and FLEET_PORT make, read as the gateway reads them. Only these three are
    read, so a client is not held to the server's other settings."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in ("host", "port", "public_url"):
        values[name] = _value(name, env, values)
    return str(values["public_url"])


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Every setting from `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in SETTINGS:
        values[name] = _value(name, env, values)
    if values["x402"] == "on" and not (values["x402_pay_to"] and values["x402_facilitator_url"]):
        raise SettingError("FLEET_X402=on needs FLEET_X402_PAY_TO and FLEET_X402_FACILITATOR_URL")
    if values["x402"] == "on" and not values["x402_rpc_url"]:
        raise SettingError(
            "FLEET_X402=on needs FLEET_X402_RPC_URL: concurrent payments from one wallet are"
            " counted against its balance on chain"
        )
    return Settings(**values)


@cache
def settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
