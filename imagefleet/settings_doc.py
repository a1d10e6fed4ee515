"""docs/configuration.md, generated from the declarations of imagefleet/settings.py (and a
short list of the variables read outside `Settings`): `make docs` writes it, a test keeps it
fresh."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_origin

from imagefleet.settings import DAY, SETTINGS, Derived, MiB, Setting
from jobs.pools import Pool

CONFIGURATION_MD = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

INTRO = """\
# Configuration

<!-- Generated from imagefleet/settings.py by `make docs`: edit the declarations there. -->

Every setting is an environment variable with a default, declared once in
`imagefleet/settings.py` (a field of `Settings`: its variable, type, default and meaning).
An empty variable means the default, as an unset one does. A value that does not parse stops
the command with one line naming the variable, e.g. `FLEET_PORT must be an integer, got
'abc'`. Flags are on only when set to `1`. Prices are explained in [billing.md](billing.md);
the production stack's deployment in [deployment.md](deployment.md).
"""

# Sections of the reference: title and the settings in it, by field name (every field of
# `Settings` in exactly one; the generator refuses otherwise).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("State and services", ("var_dir", "redis_url", "broker_url", "storage_url")),
    (
        "Gateway",
        (
            "host",
            "port",
            "public_url",
            "rate_limit",
            "max_event_streams_per_key",
            "max_wait_seconds",
            "sync_timeout",
            "signed_url_seconds",
        ),
    ),
    (
        "Gateway: what a request may hold before it is answered",
        ("max_header_bytes", "header_timeout", "body_timeout", "max_buffered_bytes"),
    ),
    (
        "Limits",
        (
            "max_megapixels",
            "max_work_megapixels",
            "max_frames",
            "max_variants",
            "max_inline_bytes",
            "max_object_bytes",
        ),
    ),
    (
        "Jobs: retention, queues, time limits, redelivery",
        (
            "job_ttl_seconds",
            "output_ttl_seconds",
            "max_queue_depth",
            "max_batch_jobs",
            "soft_time_limit",
            "hard_time_limit",
            "vector_timeout",
            "max_attempts",
            "requeue_after_seconds",
            "sweep_interval",
            "lease_seconds",
            "share_reserve",
            "task_events",
        ),
    ),
    ("Redis durability", ("redis_min_replicas", "redis_wait_ms")),
    ("Encoders", ("avif_speed", "webp_method")),
    ("OCR", ("ocr_langs", "tessdata_dir", "ocr_api_cache", "ocr_max_pages")),
    (
        "Rendering HTML (from-html)",
        ("max_html_bytes", "chromium_path", "render_timeout", "render_max_side"),
    ),
    ("Billing", ("prices", "flat_price_max_megapixels", "dev_credit_micros")),
    (
        "x402 (pay per call)",
        (
            "x402",
            "x402_pay_to",
            "x402_network",
            "x402_asset",
            "x402_facilitator_url",
            "x402_rpc_url",
            "x402_token_name",
            "x402_token_version",
            "x402_rate_limit",
        ),
    ),
    (
        "Webhooks",
        (
            "webhook_attempts",
            "webhook_base_delay",
            "webhook_timeout",
            "webhook_tenant_slots",
            "webhook_redeliveries",
            "webhook_redeliver_rate",
            "webhook_allow_loopback",
            "webhook_allow_private",
        ),
    ),
    ("Logging", ("log_level", "log_format")),
)


@dataclass(frozen=True)
class Other:
    """A variable read outside `Settings`: by one command, the S3 store or the stack."""

    names: tuple[str, ...]
    default: str
    doc: str


def _processes(pool: Pool) -> str:
    many = 1 << 20  # a count no constant default equals: the default is the core count
    return "cores" if pool.default_processes(many) == many else f"`{pool.default_processes(1)}`"


OTHER_VARIABLES = (
    Other(
        tuple(f"FLEET_{pool.name}_CONCURRENCY" for pool in Pool),
        ", ".join(_processes(pool) for pool in Pool),
        "Processes of `imagefleet worker --pool <pool>` (threads on `webhooks` and `payments`,"
        " which wait on the network; its `--concurrency` wins), for the"
        f" pools {', '.join(f'`{pool.value}`' for pool in Pool)}; the job pools run"
        " `FLEET_SHARE_RESERVE` more.",
    ),
    Other(
        ("FLEET_API_KEY",),
        "the key in `<FLEET_VAR_DIR>/dev-api-key`",
        "The API key of the client commands (their `--key` wins).",
    ),
    Other(
        ("FLEET_X402_PAYER_KEY",),
        "none",
        "The x402 payer key of `imagefleet submit`, hex or a file holding it (x402-dev's"
        " `var/x402-payer.json`): the job is paid instead of billed to a key (its"
        " `--pay-with-key` wins; [payments.md](payments.md)).",
    ),
    Other(
        ("FLEET_S3_ACCESS_KEY", "FLEET_S3_SECRET_KEY"),
        "none",
        "The S3 store's keys when `FLEET_STORAGE_URL` holds none (kept apart, they need no"
        " URL escaping); `make stack` generates them into `.env`.",
    ),
    Other(
        ("FLEET_S3_PUBLIC_URL",),
        "the storage URL's endpoint",
        "The S3 endpoint clients reach, which presigned download links are signed for"
        " (`?public=` on the storage URL wins); the stack sets `http://127.0.0.1:8333`.",
    ),
    Other(
        ("FLEET_S3_PORT", "FLEET_LB_PORT", "FLEET_FLOWER_PORT"),
        "`8333`, `8080`, `5555`",
        "Host ports (on 127.0.0.1) the stack publishes SeaweedFS's S3, the load balancer and"
        " Flower on (compose.yaml).",
    ),
    Other(
        (
            "FLEET_IMAGE",
            "FLEET_REDIS_IMAGE",
            "FLEET_SEAWEEDFS_IMAGE",
            "FLEET_LB_IMAGE",
            "FLEET_FLOWER_IMAGE",
        ),
        "set by `make stack`",
        "The images compose runs, each tagged with the hash of its inputs (deploy/images.py).",
    ),
    Other(
        ("FLEET_HA_NET",),
        "`172.30.53`",
        "The /24 of the Sentinel test stack (deploy/compose.ha.yaml), if that one collides.",
    ),
)

OTHERS_INTRO = """\
Read outside `Settings`: by one command, the S3 store, or the production stack
(compose.yaml, deploy/stack.py; see [deployment.md](deployment.md)).
"""


def _type(kind: Any) -> str:
    if get_origin(kind) is tuple:
        return "words"
    if get_origin(kind) is dict:
        return "integers"
    return {bool: "flag", int: "integer", float: "number", str: "text", Path: "path"}[kind]


def _default(decl: Setting, kind: Any) -> str:
    value = decl.default
    if isinstance(value, Derived):
        shown = value.text
    elif kind is bool:
        shown = f"`{int(value)}`"
    elif isinstance(value, tuple):
        shown = f"`{' '.join(value)}`"
    elif isinstance(value, float):
        shown = f"`{value:g}`"
    elif isinstance(value, int):
        shown = f"`{value}`" + _in_words(decl.env, value)
    elif isinstance(value, dict):
        shown = ""  # only the note says it
    else:
        shown = f"`{value}`"
    return " ".join(part for part in (shown, decl.note) if part)


def _in_words(env: str, value: int) -> str:
    """4194304 bytes: " (4 MiB)"; 604800 seconds: " (7 days)"."""
    if env.endswith("_BYTES") and value and value % MiB == 0:
        return f" ({value // MiB} MiB)"
    if env.endswith("_SECONDS") and value and value % DAY == 0:
        return f" ({value // DAY} days)"
    return ""


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _check_groups() -> None:
    grouped = [name for _, names in GROUPS for name in names]
    missing = set(SETTINGS) - set(grouped)
    extra = [name for name in grouped if name not in SETTINGS or grouped.count(name) > 1]
    if missing or extra:
        raise ValueError(f"GROUPS: settings missing {sorted(missing)}, unknown or twice {extra}")


def configuration_reference() -> str:
    """The Markdown of docs/configuration.md."""
    _check_groups()
    parts = [INTRO]
    for title, names in GROUPS:
        rows = [_row(("variable", "type", "default", "meaning")), "|---|---|---|---|"]
        for name in names:
            decl, kind = SETTINGS[name]
            rows.append(_row((f"`{decl.env}`", _type(kind), _default(decl, kind), decl.doc)))
        parts.append(f"## {title}\n\n" + "\n".join(rows) + "\n")
    rows = [_row(("variable", "default", "meaning")), "|---|---|---|"]
    for other in OTHER_VARIABLES:
        listed = ", ".join(f"`{name}`" for name in other.names)
        rows.append(_row((listed, other.default, other.doc)))
    parts.append("## Other variables\n\n" + OTHERS_INTRO + "\n" + "\n".join(rows) + "\n")
    return "\n".join(parts)


def write_reference(path: Path = CONFIGURATION_MD) -> bool:
    """Writes the reference to `path`; False if it already held exactly that."""
    text = configuration_reference()
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
