"""Bad requests get the right code and a message about what the caller sent: deep JSON, a
flat-priced job the account cannot pay, synchronous-route field paths."""

from __future__ import annotations

import pytest

from tests.fleet_harness import Fleet
from tests.hostile_inputs import DEEP, DEEP_JOB, new_tenant


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/jobs", DEEP_JOB),
        ("/v1/jobs", b'{"operation":"pipeline","input":"a.png","steps":[{"x":' + DEEP + b"}]}"),
        ("/v1/image/blur", b'{"file":{"inputKey":"a.png"},"sigma":' + DEEP + b"}"),
    ],
)
def test_deeply_nested_json_is_a_validation_error(
    dir_fleet: Fleet, route: str, body: bytes
) -> None:
    with dir_fleet.client() as client:
        response = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "nested too deeply" in response.json()["error"]["message"]


def test_a_flat_priced_402_names_the_flat_price(dir_fleet: Fleet) -> None:
    key = new_tenant(dir_fleet, "t", 10)
    with dir_fleet.client(key) as client:
        response = client.post("/v1/jobs", json={"operation": "from-html", "html": "<p>hi</p>"})
    assert response.status_code == 402, response.text
    message = response.json()["error"]["message"]
    assert "0 MP" not in message and "flat price of from-html" in message, message
    assert response.json()["error"]["price_micros"] == 3000


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"file": {"inputKey": "../escape.png"}}, "`$.file.inputKey`"),
        ({"file": {"inputKey": "nowhere.png"}}, "`$.file.inputKey`"),
        ({"file": {"inline": 5}}, "`$.file.inline`"),
        ({"file": {"inline": "iVBORw0KGgo="}, "left": -1}, "`$.left`"),
    ],
)
def test_synchronous_route_errors_name_the_callers_fields(
    dir_fleet: Fleet, body: dict, path: str
) -> None:
    rect = {"left": 0, "top": 0, "width": 4, "height": 4}
    with dir_fleet.client() as client:
        response = client.post("/v1/image/crop", json={**rect, **body})
    assert response.status_code in (400, 404), response.text
    message = response.json()["error"]["message"]
    assert path in message and "$.input" not in message and "$.rect" not in message, message
