"""Who pays for a job's ending (billing/endings.py) against docs/billing.md's table, the
cancel's share worked by hand, and the directory store's refusal of keys that cannot be
written (no server: records in memory, a store in a temporary directory)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from billing.endings import FAILURES, Fault, cancel_charge, failure_charge
from jobs.errors import ErrorCode
from jobs.records import JobBilling, JobRecord, JobStatus, now
from jobs.tone import GrayscaleJob
from storage import Conflict, KeyConflict
from storage.local import DirectoryStore

DOC = Path(__file__).resolve().parent.parent / "docs" / "billing.md"


def _doc_rows() -> dict[str, tuple[str, str]]:
    """code -> (at fault, charged) from the table of docs/billing.md#endings."""
    section = DOC.read_text().split("## Endings", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            for code in re.findall(r"`([A-Z_]+)`", cells[0]):
                if code in ErrorCode.__members__:  # not a setting named in passing
                    rows[code] = (cells[1], cells[2])
    return rows


def test_every_code_has_a_rule() -> None:
    assert set(FAILURES) == set(ErrorCode)


def test_the_documented_table_is_the_declaration() -> None:
    rows = _doc_rows()
    charged = {code.value for code, ending in FAILURES.items() if ending.charged}
    assert charged == {"TIMEOUT", "WORKER_LOST", "POISON_JOB", "OUTPUT_CONFLICT"}
    assert charged <= set(rows)
    for code, (fault, what) in rows.items():
        ending = FAILURES[ErrorCode(code)]
        assert fault.startswith(ending.fault.value), code
        assert (what == "the quote") is ending.charged, code
        assert (what == "nothing") is (not ending.charged), code
    assert {c for c, e in FAILURES.items() if e.fault is Fault.FLEET} <= {
        ErrorCode(code) for code in rows
    }


def test_a_failure_owes_the_quote_or_nothing() -> None:
    assert failure_charge("TIMEOUT", 1800) == 1800
    assert failure_charge("OUTPUT_CONFLICT", 7) == 7
    assert failure_charge("INTERNAL_ERROR", 1800) == 0
    assert failure_charge("IMAGE_PARSE_FAILED", 1800) == 0
    assert failure_charge("SOMETHING_NEWER", 1800) == 0  # unknown: taken as the fleet's


def _running(seconds_ago: float | None, quote: int = 1800) -> JobRecord:
    at = now()
    return JobRecord(
        id="job_1",
        tenant="t",
        operation="grayscale",
        status=JobStatus.RUNNING if seconds_ago is not None else JobStatus.QUEUED,
        spec=GrayscaleJob(input="in.png"),
        created_at=at,
        updated_at=at,
        started_at=at - timedelta(seconds=seconds_ago) if seconds_ago is not None else None,
        billing=JobBilling(megapixels=6.0, quoted_micros=quote),
    )


def test_a_cancel_owes_its_share_of_the_quote_by_the_time_it_ran() -> None:
    assert cancel_charge(_running(None), 60, 300) == 0  # still queued: free
    quarter = _running(15)
    assert quarter.started_at is not None
    quarter.finished_at = quarter.started_at + timedelta(seconds=15)
    assert cancel_charge(quarter, 60, 300) == 450  # 15 s of a 60 s limit: a quarter of 1800
    assert cancel_charge(_running(0.1), 60, 300) == 300  # the 1 MP price as a floor
    assert cancel_charge(_running(600), 60, 300) == 1800  # never more than the quote
    assert cancel_charge(_running(1, quote=200), 60, 300) == 200  # nor a floor above it


def test_the_directory_store_refuses_a_folder_and_a_key_inside_an_object(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("t/trap/dir/x", b"x", "image/png")
    store.put("t/a.png", b"a", "image/png")
    assert store.conflict(["t/trap/dir"]) == Conflict("t/trap/dir")
    assert store.conflict(["t/a.png/x"]) == Conflict("t/a.png/x", "t/a.png")
    assert store.conflict(["t/a.png/x/y"]) == Conflict("t/a.png/x/y", "t/a.png")
    assert store.conflict(["t/out", "t/out/small"]) == Conflict("t/out/small", "t/out")
    assert store.conflict(["t/a.png", "t/trap/dir/x", "t/trap/new"]) is None  # overwrites
    with pytest.raises(KeyConflict) as folder:
        store.put("t/trap/dir", b"y", "image/png")
    assert folder.value.conflict == Conflict("t/trap/dir")
    with pytest.raises(KeyConflict) as inside:
        store.put("t/a.png/x", b"y", "image/png")
    assert inside.value.conflict == Conflict("t/a.png/x", "t/a.png")
    assert sorted(p.name for p in (tmp_path / "t" / "trap").iterdir()) == ["dir"]  # no tmp left
    assert store.get("t/a.png") == b"a"
