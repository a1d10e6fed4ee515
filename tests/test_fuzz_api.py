"""Property-based fuzzing of job submissions against the live gateway: never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.errors import ErrorCode
from jobs.registry import OPERATIONS, example_body
from tests import images
from tests.fleet_harness import Fleet

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CODES = {code.value for code in ErrorCode}


@pytest.fixture(scope="module")
def client(dir_fleet: Fleet) -> httpx.Client:
    c = dir_fleet.client()
    c.put(
        "/v1/objects/photo.jpg", content=images.encode(np.zeros((12, 16, 3), np.uint8), "JPEG")
    ).raise_for_status()
    return c


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"] in CODES


@FUZZ
@given(body=JSON)
def test_arbitrary_json_never_5xx(client: httpx.Client, body: Any) -> None:
    _check(client.post("/v1/jobs", json=body))


@FUZZ
@given(
    name=st.sampled_from(sorted(OPERATIONS)),
    field=st.text(max_size=12),
    value=JSON,
    pick=st.integers(0, 20),
)
def test_valid_specs_with_one_field_mutated_never_5xx(
    client: httpx.Client, name: str, field: str, value: Any, pick: int
) -> None:
    body = example_body(OPERATIONS[name])
    if "input" in body:
        body["input"] = "photo.jpg"
    keys = sorted(body)
    target = keys[pick % len(keys)] if pick % 3 else (field or "x")
    body[target] = value
    _check(client.post("/v1/jobs", json=body))
    _check(
        client.post(
            f"/v1/image/{name}",
            json={k: v for k, v in body.items() if k != "operation"},
            timeout=120,
        )
    )
