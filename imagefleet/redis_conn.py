"""One way from FLEET_REDIS_URL to a Redis client, for every process of the fleet.

`redis://[:password@]host:port/db` is one Redis, as always. A Sentinel URL names the
sentinels, the monitored master's name and the database:

    redis+sentinel://[[user]:password@]host1:26379,host2:26379,host3:26379/mymaster/0

and gives a client of whichever Redis the sentinels say is the master now: after a
failover its next connection goes to the new master (redis-py's `Sentinel.master_for`).
The password is the data nodes' (URL-escaped); `?sentinel_password=...` is the sentinels'
own, if they have one. The Celery broker follows the same URL through kombu's sentinel
transport (`kombu_broker`).

Redis replication is asynchronous: a write the master acknowledged can vanish with it.
`wait_for_replicas` waits until what this process wrote so far is on N replicas (WAIT).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel

from imagefleet.redact import redacted

log = logging.getLogger("imagefleet.redis")

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
# Asking a sentinel where the master is: a dead sentinel must not hold a request up long.
SENTINEL_TIMEOUT = 1.0
PROBE_KEY = "imagefleet:replication-probe"


class NotReplicated(redis.ConnectionError):
    """The master did not confirm that enough replicas hold a write within the timeout:
    as good as a Redis outage for a caller that must not claim durability (retry)."""


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    service: str  # the master's name in the sentinels' configuration
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def text(reply: bytes | str) -> str:
    """A reply as str. The fleet's clients leave replies undecoded (bytes); redis-py types
    them as bytes | str, since a client may decode them."""
    return reply if isinstance(reply, str) else reply.decode()


def texts(reply: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash (HGETALL, a stream entry's fields) with keys and values as str."""
    return {text(k): text(v) for k, v in reply.items()}


def _host_port(item: str, url: str) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host:
        raise ValueError(f"a sentinel without a host in {redacted(url)!r}")
    try:
        return host, int(port) if port else SENTINEL_PORT
    except ValueError:
        raise ValueError(f"sentinel port {port!r} is not a number in {redacted(url)!r}") from None


def parse_sentinel_url(url: str) -> SentinelURL:
    """`redis+sentinel://[[user]:password@]h1[:port],h2[:port]/service[/db][?sentinel_password=]`."""
    if not is_sentinel(url):
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {redacted(url)!r}")
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    sentinels = tuple(_host_port(item.strip(), url) for item in hosts.split(",") if item.strip())
    if not sentinels:
        raise ValueError(f"no sentinels in {redacted(url)!r}")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(f"name the master as /<service>[/<db>] in {redacted(url)!r}")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError:
        raise ValueError(f"the database {path[1]!r} is not a number in {redacted(url)!r}") from None
    query = parse_qs(parts.query)
    sentinel_password = query.get("sentinel_password", [None])[0]
    return SentinelURL(
        sentinels,
        unquote(path[0]),
        db,
        unquote(username) or None,
        unquote(password) or None,
        sentinel_password,
    )


def _sentinel_kwargs(parsed: SentinelURL) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
    }
    if parsed.sentinel_password:
        kwargs["password"] = parsed.sentinel_password
    return kwargs


def _node_kwargs(parsed: SentinelURL, kwargs: dict[str, Any]) -> dict[str, Any]:
    node = {"db": parsed.db, **kwargs}
    if parsed.password:
        node["password"] = parsed.password
    if parsed.username:
        node["username"] = parsed.username
    return node


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A client of the Redis `url` names (the current master, for a Sentinel URL);
    `kwargs` as for `redis.Redis` (socket_timeout, ...)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    sentinel = redis.sentinel.Sentinel(
        list(parsed.sentinels), sentinel_kwargs=_sentinel_kwargs(parsed)
    )
    return sentinel.master_for(
        parsed.service, redis_class=redis.Redis, **_node_kwargs(parsed, kwargs)
    )


def connect_async(url: str, **kwargs: Any) -> aioredis.Redis:
    """`connect` for redis.asyncio."""
    if not is_sentinel(url):
        return aioredis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    sentinel = asentinel.Sentinel(list(parsed.sentinels), sentinel_kwargs=_sentinel_kwargs(parsed))
    return sentinel.master_for(
        parsed.service, redis_class=aioredis.Redis, **_node_kwargs(parsed, kwargs)
    )


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The Celery broker URL and transport options for a broker URL: a Sentinel URL
    becomes kombu's sentinel transport (`sentinel://h1:26379/0;sentinel://h2:26379/0`
    with `master_name`); any other URL is kept as it is."""
    if not is_sentinel(url):
        return url, {}
    parsed = parse_sentinel_url(url)
    auth = ""
    if parsed.password or parsed.username:
        auth = f"{quote(parsed.username or '', safe='')}:{quote(parsed.password or '', safe='')}@"
    hosts = ";".join(
        f"sentinel://{auth}{f'[{h}]' if ':' in h else h}:{p}/{parsed.db}"
        for h, p in parsed.sentinels
    )
    return hosts, {"master_name": parsed.service, "sentinel_kwargs": _sentinel_kwargs(parsed)}


def wait_for_replicas(client: redis.Redis, replicas: int, timeout_ms: int) -> None:
    """Return once everything written to this master before the call (by any connection of
    this process) is on at least `replicas` replicas; NotReplicated after `timeout_ms`.

    WAIT counts the replicas that acknowledged the last write *of its own connection*, and a
    pooled client may send it on a connection that wrote nothing yet (which WAIT would
    answer at once). So WAIT follows a tiny write on the same connection: the replication
    stream is ordered, and whatever completed before that write is covered by it."""
    if replicas <= 0:
        return
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(PROBE_KEY)
        pipe.execute_command("WAIT", replicas, timeout_ms)
        _, acked = pipe.execute()
    if int(acked) < replicas:
        raise NotReplicated(
            f"{acked} of {replicas} replica(s) confirmed the write within {timeout_ms} ms"
        )


def replicated_within(client: redis.Redis, replicas: int, wait_ms: int, patience: float) -> None:
    """wait_for_replicas in rounds of `wait_ms` for up to `patience` seconds (a replica
    catching up after a restart), then NotReplicated; a master that dies meanwhile raises
    redis.ConnectionError."""
    deadline = time.monotonic() + patience
    while True:
        try:
            wait_for_replicas(client, replicas, wait_ms)
            return
        except NotReplicated as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("writes not on %d replica(s) yet (%s); waiting", replicas, exc)
