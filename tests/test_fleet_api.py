"""The HTTP contract: validation with field paths, auth, tenant isolation, meta routes."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
import redis

from billing.accounts import Accounts, new_api_key
from tests import images
from tests.fleet_harness import Fleet

RECT = {"x": 0, "y": 0, "width": 4, "height": 4}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"operation": "crop", "input": "a.png", "rect": {**RECT, "width": 0}}, "`$.rect.width`"),
        ({"operation": "crop", "input": "a.png", "rect": {**RECT, "x": -1}}, "`$.rect.x`"),
        ({"operation": "crop", "input": "a.png", "rect": RECT, "quality": 101}, "`$.quality`"),
        ({"operation": "crop", "input": "a.png", "rect": RECT, "format": "bmp"}, "`$.format`"),
        (
            {"operation": "crop", "input": "a.png", "gravity": "north", "width": 1, "height": 1},
            "`$.gravity`",
        ),
        (
            {
                "operation": "crop",
                "input": "a.png",
                "gravity": "focal_point",
                "width": 1,
                "height": 1,
                "focal_x": 1.5,
            },
            "`$.focal_x`",
        ),
        ({"operation": "crop", "input": "a.png", "rect": RECT, "colour": "red"}, "`colour`"),
        ({"operation": "crop", "input": "a.png", "gravity": "center"}, "`width` and `height`"),
        ({"operation": "crop", "input": "a.png"}, "`rect` or `gravity`"),
        ({"operation": "sepia", "input": "a.png"}, "`$.operation`"),
        (
            {"operation": "crop", "input": {"inline": "not base64!"}, "rect": RECT},
            "`$.input.inline`",
        ),
        ({"operation": "crop", "input": "../etc/passwd", "rect": RECT}, "`$.input`"),
        ({"operation": "crop", "input": "a.png", "output": "/abs.png", "rect": RECT}, "`$.output`"),
    ],
)
def test_bad_specs_get_400_with_the_field_path(dir_fleet: Fleet, body: dict, path: str) -> None:
    with dir_fleet.client() as client:
        response = client.post("/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert path in error["message"]


def test_malformed_json_is_a_validation_error(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        response = client.post("/v1/jobs", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_missing_input_object_is_404_naming_it(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        response = client.post(
            "/v1/jobs", json={"operation": "crop", "input": "nowhere.png", "rect": RECT}
        )
    assert response.status_code == 404
    assert "nowhere.png" in response.json()["error"]["message"]


def test_oversized_inline_input_is_413(dir_fleet: Fleet) -> None:
    blob = base64.b64encode(b"\0" * (4 * 1024 * 1024 + 1)).decode()
    with dir_fleet.client() as client:
        response = client.post(
            "/v1/jobs", json={"operation": "crop", "input": {"inline": blob}, "rect": RECT}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong-key", "Basic abc"])
def test_requests_without_a_valid_key_are_401(dir_fleet: Fleet, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{dir_fleet.base_url}/v1/operations", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_tenants_see_only_their_own_jobs_and_objects(dir_fleet: Fleet) -> None:
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    _, other_key = accounts.create(f"other-{new_api_key()[3:11].lower()}", 10_000_000)
    pixels = images.photo_like(20, 20)
    with dir_fleet.client() as mine, dir_fleet.client(other_key) as theirs:
        mine.put("/v1/objects/private.png", content=images.encode(pixels)).raise_for_status()
        job = mine.post(
            "/v1/jobs?wait=30", json={"operation": "crop", "input": "private.png", "rect": RECT}
        ).json()
        assert job["status"] == "succeeded"
        assert theirs.get(f"/v1/jobs/{job['id']}").status_code == 404
        assert theirs.get("/v1/objects/private.png").status_code == 404
        # Their namespace is separate: the same key names their own object.
        refused = theirs.post(
            "/v1/jobs", json={"operation": "crop", "input": "private.png", "rect": RECT}
        )
        assert refused.status_code == 404
        assert mine.get("/v1/jobs/job_does_not_exist").status_code == 404


def test_object_round_trip_and_key_rules(fleet: Fleet) -> None:
    payload = bytes(range(256)) * 100
    with fleet.client() as client:
        put = client.put("/v1/objects/dir//sub/./blob.bin", content=payload)
        assert put.status_code == 201 and put.json()["key"] == "dir/sub/blob.bin"
        assert client.get("/v1/objects/dir/sub/blob.bin").content == payload
        assert client.get("/v1/objects/dir/sub/missing.bin").status_code == 404
        empty = client.put("/v1/objects/empty.bin", content=b"")
        assert empty.status_code == 400
        traversal = client.put("/v1/objects/a/%2E%2E/%2E%2E/escape.bin", content=b"x")
        assert traversal.status_code in (400, 404)
        assert traversal.json()["error"]["code"] in ("VALIDATION_ERROR", "NOT_FOUND")


def test_operations_and_openapi_come_from_the_registry(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        ops = {op["name"]: op for op in client.get("/v1/operations").json()["operations"]}
        doc = client.get("/openapi.json").json()
    assert ops["crop"]["queue"] == "cpu"
    assert ops["crop"]["price"] == {"kind": "per_megapixel", "per_mp_micros": 300}
    crop_schema = doc["components"]["schemas"]["CropJob"]
    assert crop_schema["additionalProperties"] is False
    assert set(crop_schema["properties"]) >= {
        "input",
        "output",
        "rect",
        "gravity",
        "focal_x",
        "focal_y",
        "width",
        "height",
        "format",
        "quality",
        "inline",
    }
    internals = {"tenant", "task_id"}
    assert not internals & set(doc["components"]["schemas"]["JobRecord"]["properties"])
    from gateway.app import ROUTES

    for route in ROUTES:  # every route the gateway serves is documented, with its methods
        path = re.sub(r":\w+}", "}", route.path)  # {key:key} is {key}
        documented = {m.upper() for m in doc["paths"].get(path, {})}
        assert set(route.methods or ()) - {"HEAD"} <= documented, (path, route.methods)


def test_health_and_readiness(fleet: Fleet) -> None:
    assert httpx.get(f"{fleet.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{fleet.base_url}/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert checks["redis"] is True and checks["storage"] is True
    assert checks["pools"]["cpu"] >= 1
