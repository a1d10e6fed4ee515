"""The fast version of `make chaos`: fewer jobs, the same faults and the same checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import chaos

pytestmark = pytest.mark.fleet  # starts its own servers


def test_nothing_is_lost_under_kills_and_a_redis_restart(tmp_path: Path) -> None:
    report = chaos.run(jobs=150, kill_every=0.7, workdir=tmp_path, seed=11, say=lambda _: None)
    print(report.summary())
    assert report.problems == []
    assert report.accepted == 150 and report.redis_restarts == 1 and report.kills > 0
    assert sum(report.statuses.values()) == 150
    assert report.statuses["succeeded"] > 100 and report.captures == report.statuses["succeeded"]
