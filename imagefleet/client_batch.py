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
    """Run `work()`; a failure comes back as an ApiError, not raised, but for a fleet that
    does not answer at all, which ends the whole command (in one line: client_cli.reaching)."""
    try:
        return work()
    except ApiError as exc:
        return exc
    except (httpx.ConnectError, httpx.ConnectTimeout):
        raise
    except (OSError, httpx.HTTPError) as exc:  # a wait timed out, the network, a file
        return ApiError(None, "CLIENT_ERROR", f"{type(exc).__name__}: {exc}")


def unplaced(message: str, index: int) -> str:
    """A batch item's message as its file's: without the item's place in the batch, which
    the file name stands for (`- at `$.jobs[6]`` dropped, `$.jobs[6].width` -> `$.width`)."""
    place = f"$.jobs[{index}]"
    return message.replace(f" - at `{place}`", "").replace(f"`{place}.", "`$.")


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
        for index, (name, item) in enumerate(zip(chunk, batch["items"], strict=True)):
            error = item.get("error")
            found[name] = (
                ApiError(None, error["code"], unplaced(error["message"], index), item)
                if error
                else item["job"]
            )
        waited = guarded(partial(client.wait_batch, batch["id"], timeout))
        if isinstance(waited, ApiError):
            found.update({n: waited for n in chunk if isinstance(found[n], str)})
    return found
