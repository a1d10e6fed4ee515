"""`/openapi.json` is a valid OpenAPI 3.1 document, every route of gateway/app.py is in it,
and it describes every answer of a live gateway: schemathesis sends generated requests to
each documented operation of a fleet of this test's own and checks status codes, content
types, headers and bodies against the document (and that nothing answers 5xx)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import ROUTES
from gateway.openapi import openapi_document
from imagefleet import settings as fleet_settings
from tests import images
from tests.fleet_harness import Fleet, start_fleet

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Short waits, so `?wait` and the synchronous API answer 202 quickly when a job is slow; a
# small inline limit, so the synchronous API hands out signed download URLs.
EXAMPLES = 20  # per operation and mode (valid requests, invalid ones)
FLEET_ENV = {
    "FLEET_MAX_MEGAPIXELS": "40",
    "FLEET_MAX_WAIT_SECONDS": "3",
    "FLEET_SYNC_TIMEOUT": "3",
    "FLEET_MAX_INLINE_BYTES": "2048",
}


def test_the_document_is_valid_openapi() -> None:
    doc = openapi_document(fleet_settings.settings())
    validate(doc)  # raises on any error
    assert doc["openapi"].startswith("3.1")


def test_every_route_is_documented_with_its_methods() -> None:
    paths = openapi_document(fleet_settings.settings())["paths"]
    for route in ROUTES:
        path = re.sub(r":\w+}", "}", route.path)  # {key:key} is {key}
        documented = {m.upper() for m in paths.get(path, {}) if m != "parameters"}
        assert set(route.methods or ()) - {"HEAD"} <= documented, (path, route.methods)


def test_the_synchronous_api_is_documented_as_json() -> None:
    post = openapi_document(fleet_settings.settings())["paths"]["/v1/image/{op}"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json"}
    for status in ("200", "202", "400", "422"):
        assert set(post["responses"][status]["content"]) == {"application/json"}
    bodies = post["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    crop = next(b for b in bodies if b["title"] == "crop")
    assert {"file", "left", "top"} <= set(crop["properties"]) and "input" not in crop["properties"]


@dataclass
class Live:
    """The fleet, and real things in it that generated requests are pointed at half the time
    (random ids and keys alone only ever find 404s)."""

    fleet: Fleet
    job_id: str  # an ended job
    upload: tuple[str, dict[str, str]]  # a signed upload URL's token and query
    download: tuple[str, dict[str, str]]  # a signed download URL's token and query

    def point_at_real_things(self, case: Any) -> None:
        def half(value: object) -> bool:  # the same case always gets the same answer
            return zlib.crc32(repr(value).encode()) % 2 == 0

        path = case.path_parameters or {}
        if "job_id" in path and half(path["job_id"]):
            path["job_id"] = self.job_id
        if "key" in path and half(path["key"]):
            path["key"] = "photo.png"
        if "token" in path and half(path["token"]):
            path["token"], query = self.upload if case.method == "PUT" else self.download
            case.query = {**(case.query or {}), **query}
        body = case.body if isinstance(case.body, dict) else {}
        for field in ("input", "file"):
            if isinstance(body.get(field), str) and half(body[field]):
                body[field] = "photo.png"


def _signed(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    assert parts.path.startswith("/v1/signed/"), url
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts.path.removeprefix("/v1/signed/"), query


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    fleet = start_fleet(tmp_path_factory.mktemp("openapi") / "var", FLEET_ENV)
    try:
        with fleet.client() as client:
            noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
            photo = images.encode(noise, "PNG")  # its output is over the inline limit
            client.put("/v1/objects/photo.png", content=photo).raise_for_status()
            job = client.post(
                "/v1/jobs?wait=3", json={"operation": "grayscale", "input": "photo.png"}
            )
            assert job.status_code == 200, job.text  # ended within the wait
            upload = client.post("/v1/uploads").json()["uploadUrl"]
            output = client.post("/v1/image/grayscale", json={"file": "photo.png"}).json()
            yield Live(fleet, job.json()["id"], _signed(upload), _signed(output["outputUrl"]))
    finally:
        fleet.stop()


def _send(case: Any, live: Live) -> httpx.Response:
    """The case's request, sent with httpx: schemathesis' own client reads event streams
    with a urllib3 2 call, and this environment has urllib3 1.26."""
    auth = {"Authorization": f"Bearer {live.fleet.api_key}"}
    kwargs = case.as_transport_kwargs(base_url=live.fleet.base_url, headers=auth)
    body = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif "data" in kwargs:
        body["content"] = kwargs["data"]
    return httpx.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs["headers"],
        params=kwargs.get("params"),
        timeout=30,
        **body,
    )


def _failures(operation: Any, mode: GenerationMode, live: Live) -> list[str]:
    """Every generated request of one operation whose answer breaks a check (all of them, so
    one run reports every problem; no shrinking: each is reported as the curl that failed)."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,  # nothing saved in the checkout
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def probe(case: Any) -> None:
        live.point_at_real_things(case)
        try:
            case.validate_response(_send(case, live), checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # checks fail with a group
            failures.append(f"{operation.label} ({mode.value}): {exc}\n{case.as_curl_command()}")

    try:
        probe()
    except Unsatisfiable:  # nothing of the operation can be invalid (no parameters, no body)
        assert mode == GenerationMode.NEGATIVE
    return failures


@pytest.mark.fleet
def test_the_live_gateway_answers_as_documented(live: Live, tmp_path: Path) -> None:
    schema: Any = schemathesis.openapi.from_url(f"{live.fleet.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18  # every route and method
    set_hypothesis_home_dir(tmp_path)  # its cache of constants: not in the checkout either
    try:
        failures = [
            failure
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for failure in _failures(operation, mode, live)
        ]
    finally:
        set_hypothesis_home_dir(None)
    assert not failures, f"{len(failures)} answers break the document:\n\n" + "\n\n".join(
        failures[:30]
    )
