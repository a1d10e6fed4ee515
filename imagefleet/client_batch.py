"""The CLI's `batch` over `POST /v1/batches`: many files' jobs submitted a batch at a time
and waited for as a batch; failures come back as values, per file."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from functools import partial
from typing import Any, TypeVar

import httpx

from imagefleet.client import ApiError, Client
from jobs.spec import JobSpec

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def guarded(work: Callable[[], T]) -> T | ApiError:
    """Run `work()`; a failure comes back as an ApiError, not raised."""
    try:
        return work()
    except ApiError as exc:
        return exc
    except (OSError, httpx.HTTPError) as exc:  # a wait timed out, the network, a file
        return ApiError(None, "CLIENT_ERROR", f"{type(exc).__name__}: {exc}")


def run_batches(
    client: Client, specs: dict[K, dict[str, Any]], size: int, timeout: float
) -> dict[K, str | ApiError]:
    """Each spec's job id (or the error its item answered), submitted `size` to a batch;
    returns once every batch is done (or its wait failed: that error for its jobs)."""
    found: dict[K, str | ApiError] = {}
    names = list(specs)
    size = max(1, size)
    for start in range(0, len(names), size):
        chunk = names[start : start + size]
        jobs: list[JobSpec | Mapping[str, Any]] = [specs[n] for n in chunk]
        batch = guarded(partial(client.submit_batch, jobs))
        if isinstance(batch, ApiError):
            found.update(dict.fromkeys(chunk, batch))
            continue
        for name, item in zip(chunk, batch["items"], strict=True):
            error = item.get("error")
            found[name] = (
                ApiError(None, error["code"], error["message"], item) if error else item["job"]
            )
        waited = guarded(partial(client.wait_batch, batch["id"], timeout))
        if isinstance(waited, ApiError):
            found.update({n: waited for n in chunk if isinstance(found[n], str)})
    return found
