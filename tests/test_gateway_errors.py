"""A failure no route handles (S3 down, a bug) is one 503 and one log line, not a 500 and
a second traceback from the server."""

from __future__ import annotations

import logging

import pytest
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.app import create_app
from imagefleet.settings import load_settings


def test_an_unexpected_error_is_one_503_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(load_settings())

    async def boom(request: Request) -> None:
        raise RuntimeError("the object store fell over")

    app.router.routes.append(Route("/boom", boom))
    with caplog.at_level(logging.INFO), TestClient(app) as client:
        response = client.get("/boom")  # re-raised here if anything passed it on
    assert response.status_code == 503 and response.headers["Retry-After"] == "2"
    assert response.json()["error"]["code"] == "UNAVAILABLE"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unhandled error on GET /boom" in errors[0].getMessage()
