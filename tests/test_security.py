"""Security probes: cross-tenant actions, SSRF through DNS names, secrets kept out of logs."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from billing.accounts import Accounts
from imagefleet.addresses import Refused, check_address
from tests import images
from tests.fleet_harness import Fleet


def test_other_tenants_cannot_cancel_redeliver_or_list_a_job(dir_fleet: Fleet) -> None:
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    _, mine = accounts.create(f"sec{np.random.default_rng().integers(10**9)}", 1_000_000)
    _, theirs = accounts.create(f"sec{np.random.default_rng().integers(10**9)}", 1_000_000)
    with dir_fleet.client(mine) as a, dir_fleet.client(theirs) as b:
        a.put("/v1/objects/s.png", content=images.encode(np.zeros((8, 8, 3), np.uint8)))
        job = a.post(
            "/v1/jobs?wait=30",
            json={
                "operation": "grayscale",
                "input": "s.png",
                "webhook_url": "http://127.0.0.1:9/x",
            },
        ).json()
        for response in (
            b.delete(f"/v1/jobs/{job['id']}"),
            b.post(f"/v1/jobs/{job['id']}/webhook/redeliver"),
            b.get(f"/v1/jobs/{job['id']}/events"),
            b.get(f"/v1/objects/{job['result']['output']}"),
        ):
            assert response.status_code == 404, response.text
        assert job["id"] not in {j["id"] for j in b.get("/v1/jobs?limit=100").json()["jobs"]}
        assert a.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"  # untouched


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/hook",
        "http://ip6-localhost/hook",
        "http://localhost./hook",
        "http://no-such-host.invalid/h",
    ],
)
def test_dns_names_of_forbidden_addresses_are_refused(url: str) -> None:
    with pytest.raises(Refused):
        check_address(url, allow_loopback=False, allow_private=False)


def test_api_keys_and_webhook_secrets_never_reach_the_logs(dir_fleet: Fleet) -> None:
    account = Accounts(redis.Redis.from_url(dir_fleet.redis_url)).require("dev")
    with dir_fleet.client() as client:  # a few requests that log: ok, bad key, failed job
        client.put("/v1/objects/l.png", content=b"not an image")
        client.post("/v1/jobs?wait=30", json={"operation": "blur", "input": "l.png"})
    log = dir_fleet.log_file.read_text(errors="replace")
    assert "queued for dev" in log  # the log is the right one, and it has content
    assert dir_fleet.api_key not in log
    assert account.webhook_secret not in log
    assert account.webhook_secret.removeprefix("whsec_") not in log
