"""Redis Sentinel URLs (parsed for redis-py, and for kombu's sentinel transport), and a
loopback Sentinel deployment answering WAIT and carrying the task message the gateway
prebuilds. The failover itself is tests/test_redis_failover.py."""

from __future__ import annotations

import pytest

from imagefleet.redis_conn import (
    NotReplicated,
    connect,
    is_sentinel,
    kombu_broker,
    parse_sentinel_url,
    wait_for_replicas,
)
from tests.sentinel_harness import Sentinels, needs_sentinel

# ---- the URL forms (no servers) --------------------------------------------------------


def test_sentinel_urls_parse_into_sentinels_service_db_and_escaped_password() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://:p%2Fw%23d%3F@10.0.0.1:26379,sentinel-b,[::1]:26380/mymaster/2"
        "?sentinel_password=s3"
    )
    assert parsed.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26379), ("::1", 26380))
    assert (parsed.service, parsed.db, parsed.password) == ("mymaster", 2, "p/w#d?")
    assert parsed.sentinel_password == "s3" and parsed.username is None
    assert parse_sentinel_url("redis+sentinel://h/m").db == 0
    assert is_sentinel("redis+sentinel://h/m") and not is_sentinel("redis://h:6379/0")
    for bad in (
        "redis+sentinel://h",
        "redis+sentinel://h/m/x",
        "redis+sentinel:///m",
        "redis+sentinel://h:port/m",
        "redis://h/m",
    ):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


def test_the_broker_follows_the_same_url_through_kombus_sentinel_transport() -> None:
    url, options = kombu_broker("redis+sentinel://:p%2Fw@h1:26379,h2:26380/mymaster/1")
    assert url == "sentinel://:p%2Fw@h1:26379/1;sentinel://:p%2Fw@h2:26380/1"
    assert options["master_name"] == "mymaster"
    assert kombu_broker("redis://h:6379/0") == ("redis://h:6379/0", {})
    assert kombu_broker("amqp://u:p@rabbit//") == ("amqp://u:p@rabbit//", {})


# ---- a loopback Sentinel deployment ------------------------------------------------------


@needs_sentinel
def test_wait_confirms_a_replica_and_refuses_without_one(sentinels: Sentinels) -> None:
    client = connect(sentinels.url, socket_timeout=5)
    client.set("imagefleet:test", "1")
    wait_for_replicas(client, 1, 2000)  # the replica is in sync: at once
    with pytest.raises(NotReplicated):
        wait_for_replicas(client, 2, 200)  # there is only one
    client.close()


@needs_sentinel
def test_kombus_sentinel_transport_pushes_the_message_the_gateway_prebuilds(
    sentinels: Sentinels,
) -> None:
    """The gateway's fast path writes the task message to the master itself: it must be
    what Celery sends through the sentinel transport, in the list the workers pop."""
    from kombu import Connection

    from imagefleet.dispatch import redis_job_message
    from imagefleet.settings import load_settings
    from tests.fleet_helpers import normalised_message, send_task_probe

    cfg = load_settings()
    queue, ours = redis_job_message("job-1", "ocr", cfg)
    url, options = kombu_broker(sentinels.url)
    client = connect(sentinels.url)
    with Connection(url, transport_options=options) as connection:
        theirs = send_task_probe(connection, client)
    client.close()
    assert queue == "ocr"
    assert normalised_message(ours) == normalised_message(theirs)
