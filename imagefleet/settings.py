"""All configuration, read from the environment in one place. Every limit has a default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MiB = 1024 * 1024
DEFAULT_OCR_LANGS = "eng spa fra deu ita por nld pol rus chi_sim"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") == "1"


def _local_redis(var_dir: Path) -> str:
    """The Redis of a running `imagefleet up` (it writes var/redis-url), else localhost."""
    path = var_dir / "redis-url"
    return path.read_text().strip() if path.exists() else "redis://127.0.0.1:6379/0"


def _prices() -> dict[str, int]:
    """FLEET_PRICE_CONTACT_SHEET_PER_MP_MICROS=400 -> {"contact-sheet.per_mp_micros": 400}."""
    prices = {}
    for name, value in os.environ.items():
        for suffix in ("_PER_MP_MICROS", "_FLAT_MICROS"):
            if name.startswith("FLEET_PRICE_") and name.endswith(suffix):
                op = name[len("FLEET_PRICE_") : -len(suffix)].lower().replace("_", "-")
                prices[f"{op}.{suffix[1:].lower()}"] = int(value)
    return prices


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    redis_url: str
    broker_url: str
    storage_url: str
    host: str
    port: int
    public_url: str
    max_megapixels: float
    max_frames: int
    max_inline_bytes: int
    max_object_bytes: int
    job_ttl_seconds: int
    output_ttl_seconds: int
    max_attempts: int
    max_queue_depth: int
    soft_time_limit: int
    hard_time_limit: int
    max_wait_seconds: int
    avif_speed: int
    webp_method: int
    log_level: str
    log_format: str
    ocr_langs: tuple[str, ...]
    tessdata_dir: str
    ocr_api_cache: int
    ocr_max_pages: int
    max_html_bytes: int
    chromium_path: str
    render_timeout: float
    prices: dict[str, int]  # "resize.per_mp_micros" -> micros (operator overrides)
    rate_limit: float  # requests per second per API key (bursts of twice that)
    dev_credit_micros: int
    webhook_attempts: int
    sync_timeout: float
    signed_url_seconds: int
    webhook_base_delay: float
    webhook_allow_loopback: bool
    webhook_allow_private: bool
    requeue_after_seconds: float  # a job idle this long is checked for a lost message
    sweep_interval: float
    lease_seconds: float  # a running job whose lease is not renewed this long is lost
    task_events: bool  # workers send Celery task events (for Flower); off saves Redis work
    max_event_streams_per_key: int  # open event streams one API key may hold (429 past it)
    render_max_side: int  # from-html viewport and full-page sides (Chromium's texture limit)
    max_work_megapixels: float  # megapixels of all rasters a job creates, steps added up
    redis_min_replicas: int  # replicas that must hold a job (and a capture) before it counts
    redis_wait_ms: int  # how long to wait for them (WAIT), then 503 / retry

    @property
    def dev_key_file(self) -> Path:
        return self.var_dir / "dev-api-key"


def load_settings() -> Settings:
    var_dir = Path(os.environ.get("FLEET_VAR_DIR", "var")).resolve()
    host = os.environ.get("FLEET_HOST", "127.0.0.1")
    port = _int("FLEET_PORT", 8080)
    return Settings(
        var_dir=var_dir,
        redis_url=os.environ.get("FLEET_REDIS_URL") or _local_redis(var_dir),
        broker_url=os.environ.get("FLEET_BROKER_URL")
        or os.environ.get("FLEET_REDIS_URL")
        or _local_redis(var_dir),
        storage_url=os.environ.get("FLEET_STORAGE_URL", f"file://{var_dir / 'objects'}"),
        host=host,
        port=port,
        public_url=os.environ.get("FLEET_PUBLIC_URL", f"http://{host}:{port}").rstrip("/"),
        max_megapixels=_float("FLEET_MAX_MEGAPIXELS", 100.0),
        max_frames=_int("FLEET_MAX_FRAMES", 1000),
        max_inline_bytes=_int("FLEET_MAX_INLINE_BYTES", 4 * MiB),
        max_object_bytes=_int("FLEET_MAX_OBJECT_BYTES", 50 * MiB),
        job_ttl_seconds=_int("FLEET_JOB_TTL_SECONDS", 7 * 24 * 3600),
        output_ttl_seconds=_int("FLEET_OUTPUT_TTL_SECONDS", 7 * 24 * 3600),
        max_attempts=_int("FLEET_MAX_ATTEMPTS", 3),
        max_queue_depth=_int("FLEET_MAX_QUEUE_DEPTH", 10_000),
        soft_time_limit=_int("FLEET_SOFT_TIME_LIMIT", 0),
        hard_time_limit=_int("FLEET_HARD_TIME_LIMIT", 0),
        max_wait_seconds=_int("FLEET_MAX_WAIT_SECONDS", 60),
        avif_speed=_int("FLEET_AVIF_SPEED", 8),
        webp_method=_int("FLEET_WEBP_METHOD", 4),
        log_level=os.environ.get("FLEET_LOG_LEVEL", "INFO").upper(),
        log_format=os.environ.get("FLEET_LOG_FORMAT", "text").lower(),
        ocr_langs=tuple(os.environ.get("FLEET_OCR_LANGS", DEFAULT_OCR_LANGS).split()),
        tessdata_dir=os.environ.get("FLEET_TESSDATA_DIR", "/usr/share/tesseract-ocr/5/tessdata"),
        ocr_api_cache=max(1, _int("FLEET_OCR_API_CACHE", 4)),
        ocr_max_pages=_int("FLEET_OCR_MAX_PAGES", 50),
        max_html_bytes=_int("FLEET_MAX_HTML_BYTES", 1 * MiB),
        chromium_path=os.environ.get("FLEET_CHROMIUM", "/usr/bin/chromium"),
        render_timeout=_float("FLEET_RENDER_TIMEOUT", 20.0),
        prices=_prices(),
        rate_limit=_float("FLEET_RATE_LIMIT", 50.0),
        dev_credit_micros=_int("FLEET_DEV_CREDIT_MICROS", 1_000_000_000),
        webhook_attempts=_int("FLEET_WEBHOOK_ATTEMPTS", 6),
        sync_timeout=_float("FLEET_SYNC_TIMEOUT", 60.0),
        signed_url_seconds=_int("FLEET_SIGNED_URL_SECONDS", 3600),
        webhook_base_delay=_float("FLEET_WEBHOOK_BASE_DELAY", 5.0),
        webhook_allow_loopback=_flag("FLEET_WEBHOOK_ALLOW_LOOPBACK"),
        webhook_allow_private=_flag("FLEET_WEBHOOK_ALLOW_PRIVATE"),
        requeue_after_seconds=_float("FLEET_REQUEUE_AFTER_SECONDS", 300.0),
        sweep_interval=_float("FLEET_SWEEP_INTERVAL", 5.0),
        lease_seconds=_float("FLEET_LEASE_SECONDS", 10.0),
        task_events=_flag("FLEET_TASK_EVENTS"),
        max_event_streams_per_key=_int("FLEET_MAX_EVENT_STREAMS_PER_KEY", 16),
        render_max_side=_int("FLEET_RENDER_MAX_SIDE", 16384),
        max_work_megapixels=_float("FLEET_MAX_WORK_MEGAPIXELS", 0.0)
        or 4 * _float("FLEET_MAX_MEGAPIXELS", 100.0),
        redis_min_replicas=_int(
            "FLEET_REDIS_MIN_REPLICAS",
            int(  # 1 on Sentinel, else 0
                (os.environ.get("FLEET_REDIS_URL") or "").startswith("redis+sentinel://")
            ),
        ),
        redis_wait_ms=_int("FLEET_REDIS_WAIT_MS", 1000),
    )


@cache
def settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
