"""Session-wide real servers: one fleet on the directory store, one on SeaweedFS S3; the
compose stack; and a test's own Redis Sentinel deployment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet_harness import Fleet, SeaweedS3, start_fleet, start_seaweedfs
from tests.sentinel_harness import Sentinels, start_sentinels
from tests.stack_harness import Stack
from tests.stack_session import close_session_stack, open_session_stack

# Small enough that a test can build an image bomb cheaply.
TEST_MAX_MEGAPIXELS = "40"
# Short enough for a test to drip a body past it (the default is 120 s).
TEST_BODY_TIMEOUT = 15

# Fixtures that start real servers: a test that uses any of them, directly or through
# another fixture, is a fleet test. Modules that start their own servers say so themselves
# (`pytestmark = pytest.mark.fleet`). `make test-unit` runs `-m "not fleet"`.
SERVER_FIXTURES = frozenset({"dir_fleet", "s3_fleet", "fleet", "seaweed", "sentinels"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fleet)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.child.stop(grace=0)


@pytest.fixture(scope="session")
def dir_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fleet = start_fleet(
        tmp_path_factory.mktemp("dirfleet") / "var",
        {
            "FLEET_MAX_MEGAPIXELS": TEST_MAX_MEGAPIXELS,
            "FLEET_BODY_TIMEOUT_SECONDS": str(TEST_BODY_TIMEOUT),
        },
    )
    yield fleet
    fleet.stop()


@pytest.fixture(scope="session")
def s3_fleet(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Fleet]:
    fleet = start_fleet(
        tmp_path_factory.mktemp("s3fleet") / "var",
        {
            "FLEET_MAX_MEGAPIXELS": TEST_MAX_MEGAPIXELS,
            "FLEET_STORAGE_URL": seaweed.url("imagefleet-test"),
        },
    )
    yield fleet
    fleet.stop()


@pytest.fixture(params=["directory", "s3"])
def fleet(request: pytest.FixtureRequest) -> Fleet:
    """Each integration test runs against both object stores."""
    return request.getfixturevalue("dir_fleet" if request.param == "directory" else "s3_fleet")


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    """A Redis primary, its replica and three sentinels of the test's own."""
    deployment = start_sentinels(tmp_path / "redis")
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="session")
def fleet_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The compose stack of tests/test_stack.py and tests/test_stack_faults.py: started once
    per session, removed after the last test that uses it (or at the session's end)."""
    try:
        yield open_session_stack(request, tmp_path_factory)
    finally:
        close_session_stack()


@pytest.fixture(scope="session")
def stack_receiver(fleet_stack: Stack) -> str:
    """A webhook receiver container on the stack's network, as http://hooks:9000."""
    return fleet_stack.start_receiver()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Remove the stack as soon as no later test uses it, as a module-scoped fixture would:
    the rest of the session does not run beside it."""
    if "fleet_stack" not in getattr(item, "fixturenames", ()):
        return
    items = item.session.items
    later = items[items.index(item) + 1 :] if item in items else []
    if not any("fleet_stack" in getattr(other, "fixturenames", ()) for other in later):
        close_session_stack()
