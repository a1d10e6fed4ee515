"""The fast version of `make load`: sustained submissions meet push-back, not a growing queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import load

pytestmark = pytest.mark.fleet  # starts its own servers


def test_sustained_load_is_pushed_back_and_every_accepted_job_ends(tmp_path: Path) -> None:
    report = load.run(seconds=8, clients=8, queue_limit=30, workdir=tmp_path)
    print(report.summary())
    assert report.answers["202"] > 0 and report.answers["503"] > 0  # both sides were reached
    assert report.errors == 0 and report.missing_retry_after == 0
    assert report.deepest_queue <= 30 + 8  # at most one racing submission per client over
    assert report.unended == 0
