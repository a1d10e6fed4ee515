"""Session-wide real servers: one fleet on the directory store, one on SeaweedFS S3."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fleet_harness import Fleet, SeaweedS3, start_fleet, start_seaweedfs

# Small enough that a test can build an image bomb cheaply.
TEST_MAX_MEGAPIXELS = "40"

# Fixtures that start real servers: a test that uses any of them, directly or through
# another fixture, is a fleet test. Modules that start their own servers say so themselves
# (`pytestmark = pytest.mark.fleet`). `make test-unit` runs `-m "not fleet"`.
SERVER_FIXTURES = frozenset({"dir_fleet", "s3_fleet", "fleet", "seaweed"})


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
    fleet = start_fleet(tmp_path_factory.mktemp("dirfleet") / "var",
                        {"FLEET_MAX_MEGAPIXELS": TEST_MAX_MEGAPIXELS})
    yield fleet
    fleet.stop()


@pytest.fixture(scope="session")
def s3_fleet(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedS3) -> Iterator[Fleet]:
    fleet = start_fleet(tmp_path_factory.mktemp("s3fleet") / "var",
                        {"FLEET_MAX_MEGAPIXELS": TEST_MAX_MEGAPIXELS,
                         "FLEET_STORAGE_URL": seaweed.url("imagefleet-test")})
    yield fleet
    fleet.stop()


@pytest.fixture(params=["directory", "s3"])
def fleet(request: pytest.FixtureRequest) -> Fleet:
    """Each integration test runs against both object stores."""
    return request.getfixturevalue("dir_fleet" if request.param == "directory" else "s3_fleet")
