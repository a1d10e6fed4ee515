"""Settings are declared once (imagefleet/settings.py) and docs/configuration.md is generated
from them: the committed page is a fresh generation, every FLEET_* variable the code names is
documented there, and the loader gives typed values and clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagefleet.cli import main
from imagefleet.settings import SETTINGS, SettingError, load_settings
from imagefleet.settings_doc import CONFIGURATION_MD, OTHER_VARIABLES, configuration_reference

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("imagefleet", "gateway", "worker", "jobs", "billing", "storage", "deploy")
_NAME = re.compile(r"FLEET_[A-Z0-9_]+")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No FLEET_* variable set, in an empty working directory (var/ resolves there)."""
    for name in list(os.environ):
        if name.startswith("FLEET_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_configuration_md_is_a_fresh_generation() -> None:
    assert CONFIGURATION_MD == ROOT / "docs" / "configuration.md"
    committed = CONFIGURATION_MD.read_text()
    assert committed == configuration_reference(), "run `make docs` to regenerate it"


def test_the_docs_command_writes_the_reference(tmp_path: Path) -> None:
    target = tmp_path / "configuration.md"
    assert main(["docs", "--config", str(target)]) == 0
    assert target.read_text() == configuration_reference()


def _documented() -> list[str]:
    """The variable names of the reference, `<OP>`-style parts as wildcards."""
    names = [decl.env for decl, _ in SETTINGS.values()]
    return names + [name for other in OTHER_VARIABLES for name in other.names]


def _is_documented(name: str, documented: list[str]) -> bool:
    for pattern in documented:
        if name.endswith("_") and pattern.startswith(name):  # a prefix: "FLEET_PRICE_"
            return True
        if re.fullmatch(re.sub(r"<[A-Z]+>", "[A-Z0-9_]+", pattern), name):
            return True
    return False


def test_every_fleet_variable_in_the_code_is_documented() -> None:
    found: dict[str, str] = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            for name in _NAME.findall(path.read_text()):
                found.setdefault(name, path.relative_to(ROOT).as_posix())
    assert "FLEET_S3_PUBLIC_URL" in found and "FLEET_LB_PORT" in found  # the scan reads them
    documented = _documented()
    undocumented = {n: p for n, p in found.items() if not _is_documented(n, documented)}
    assert not undocumented, (
        f"add these to imagefleet/settings.py or OTHER_VARIABLES: {undocumented}"
    )


def test_every_variable_has_one_row_in_the_reference() -> None:
    first_cells = re.findall(r"^\| (`FLEET_[^|]*) \|", configuration_reference(), re.MULTILINE)
    listed = [name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)]
    assert sorted(listed) == sorted(_documented())
    assert len(set(listed)) == len(listed)  # one row each


def test_defaults(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = load_settings()
    assert cfg.var_dir == tmp_path / "var"
    assert cfg.redis_url == cfg.broker_url == "redis://127.0.0.1:6379/0"
    assert cfg.storage_url == f"file://{tmp_path / 'var' / 'objects'}"
    assert (cfg.host, cfg.port, cfg.public_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert cfg.max_megapixels == 100.0 and isinstance(cfg.max_megapixels, float)
    assert cfg.max_work_megapixels == 400.0
    assert cfg.max_inline_bytes == 4 * 1024 * 1024
    assert cfg.job_ttl_seconds == 7 * 24 * 3600
    assert cfg.ocr_langs[:2] == ("eng", "spa") and len(cfg.ocr_langs) == 10
    assert cfg.prices == {} and cfg.redis_min_replicas == 0
    assert (cfg.task_events, cfg.webhook_allow_loopback) == (False, False)
    assert (cfg.log_level, cfg.log_format) == ("INFO", "text")


@pytest.mark.parametrize(
    ("variables", "name", "expected"),
    [
        ({"FLEET_PORT": "9000"}, "port", 9000),
        ({"FLEET_PORT": ""}, "port", 8080),  # empty: the default
        (
            {"FLEET_HOST": "0.0.0.0", "FLEET_PORT": "81"},
            "public_url",
            "http://127.0.0.1:81",
        ),  # a wildcard address is reached on loopback
        ({"FLEET_PUBLIC_URL": "https://fleet.example/"}, "public_url", "https://fleet.example"),
        ({"FLEET_RATE_LIMIT": "2.5"}, "rate_limit", 2.5),
        ({"FLEET_MAX_MEGAPIXELS": "10"}, "max_work_megapixels", 40.0),
        (
            {"FLEET_MAX_MEGAPIXELS": "10", "FLEET_MAX_WORK_MEGAPIXELS": "0"},
            "max_work_megapixels",
            40.0,
        ),
        ({"FLEET_MAX_WORK_MEGAPIXELS": "7.5"}, "max_work_megapixels", 7.5),
        ({"FLEET_OCR_LANGS": "eng  deu "}, "ocr_langs", ("eng", "deu")),
        ({"FLEET_OCR_API_CACHE": "0"}, "ocr_api_cache", 1),
        ({"FLEET_LOG_LEVEL": "debug", "FLEET_LOG_FORMAT": "JSON"}, "log_level", "DEBUG"),
        ({"FLEET_LOG_FORMAT": "JSON"}, "log_format", "json"),
        ({"FLEET_TASK_EVENTS": "1"}, "task_events", True),
        ({"FLEET_TASK_EVENTS": "true"}, "task_events", False),  # flags: only "1" is on
        ({"FLEET_REDIS_URL": "redis://r:1/0"}, "broker_url", "redis://r:1/0"),
        (
            {"FLEET_REDIS_URL": "redis://r:1/0", "FLEET_BROKER_URL": "amqp://q//"},
            "broker_url",
            "amqp://q//",
        ),
        ({"FLEET_REDIS_URL": "redis+sentinel://s:26379/m/0"}, "redis_min_replicas", 1),
        (
            {"FLEET_REDIS_URL": "redis+sentinel://s:26379/m/0", "FLEET_REDIS_MIN_REPLICAS": "0"},
            "redis_min_replicas",
            0,
        ),
        (
            {
                "FLEET_PRICE_CONTACT_SHEET_PER_MP_MICROS": "400",
                "FLEET_PRICE_RESIZE_FLAT_MICROS": "7",
            },
            "prices",
            {"contact-sheet.per_mp_micros": 400, "resize.flat_micros": 7},
        ),
    ],
)
def test_parsing(
    env: pytest.MonkeyPatch, variables: dict[str, str], name: str, expected: Any
) -> None:
    for key, value in variables.items():
        env.setenv(key, value)
    value = getattr(load_settings(), name)
    assert value == expected and type(value) is type(expected)


def test_a_running_local_fleet_gives_its_redis(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "redis-url").write_text("redis://127.0.0.1:4444/0\n")
    env.setenv("FLEET_VAR_DIR", "state")
    cfg = load_settings()
    assert cfg.var_dir == tmp_path / "state"
    assert cfg.redis_url == cfg.broker_url == "redis://127.0.0.1:4444/0"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("FLEET_PORT", "abc", "FLEET_PORT must be an integer, got 'abc'"),
        ("FLEET_MAX_ATTEMPTS", "2.5", "FLEET_MAX_ATTEMPTS must be an integer, got '2.5'"),
        ("FLEET_RATE_LIMIT", "fast", "FLEET_RATE_LIMIT must be a number, got 'fast'"),
        (
            "FLEET_PRICE_RESIZE_FLAT_MICROS",
            "1e3",
            "FLEET_PRICE_RESIZE_FLAT_MICROS must be an integer, got '1e3'",
        ),
    ],
)
def test_a_bad_value_names_its_variable(
    env: pytest.MonkeyPatch, name: str, raw: str, message: str
) -> None:
    env.setenv(name, raw)
    with pytest.raises(SettingError) as caught:
        load_settings()
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_the_cli_answers_a_bad_value_with_one_line(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    result = subprocess.run(
        [sys.executable, "-m", "imagefleet.cli", "retention", "sweep"],
        env={**environ, "FLEET_PORT": "abc", "FLEET_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "imagefleet: FLEET_PORT must be an integer, got 'abc'\n"


def test_x402_on_names_what_it_still_needs() -> None:
    with pytest.raises(SettingError, match="FLEET_X402_PAY_TO and FLEET_X402_FACILITATOR_URL"):
        load_settings({"FLEET_X402": "on", "FLEET_X402_PAY_TO": "0x" + "ab" * 20})
    with pytest.raises(SettingError, match="FLEET_X402_RPC_URL"):  # the wallets' balances
        load_settings(
            {
                "FLEET_X402": "on",
                "FLEET_X402_PAY_TO": "0x" + "ab" * 20,
                "FLEET_X402_FACILITATOR_URL": "http://127.0.0.1:9",
            }
        )
    ready = load_settings(
        {
            "FLEET_X402": "on",
            "FLEET_X402_PAY_TO": "0x" + "ab" * 20,
            "FLEET_X402_FACILITATOR_URL": "http://127.0.0.1:9",
            "FLEET_X402_RPC_URL": "http://127.0.0.1:9/rpc",
        }
    )
    assert ready.x402 == "on" and ready.x402_network == "base"
