"""OCR on the ocr pool through HTTP: text out, roster enforced at submission."""

from __future__ import annotations

import pytest

from tests.fleet_harness import Fleet
from tests.images import text_image


def test_ocr_reads_text_through_the_fleet(dir_fleet: Fleet) -> None:
    lines = ["The quick brown fox jumps", "over the lazy dog 1234"]
    with dir_fleet.client() as client:
        client.put("/v1/objects/text.png", content=text_image(lines)).raise_for_status()
        job = client.post(
            "/v1/jobs?wait=60", json={"operation": "ocr", "input": "text.png", "tsv": True}
        ).json()
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert " ".join(result["text"].split()) == " ".join(" ".join(lines).split())
    assert result["words"] == 10 and result["confidence"] > 80
    assert result["tsv"].startswith("level\tpage_num")
    assert "output" not in result  # facts only, no output object


@pytest.mark.parametrize("lang", ["tlh", "eng+xyz", "jpn"])
def test_off_roster_languages_are_refused_at_submission_naming_the_roster(
    dir_fleet: Fleet, lang: str
) -> None:
    with dir_fleet.client() as client:
        client.put("/v1/objects/text.png", content=text_image(["x"])).raise_for_status()
        response = client.post(
            "/v1/jobs", json={"operation": "ocr", "input": "text.png", "lang": lang}
        )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "UNSUPPORTED_LANG"
    assert "eng spa fra deu ita por nld pol rus chi_sim" in error["message"]


def test_a_non_image_fails_with_parse_error(dir_fleet: Fleet) -> None:
    with dir_fleet.client() as client:
        client.put("/v1/objects/notes.txt", content=b"plain text, not an image").raise_for_status()
        job = client.post(
            "/v1/jobs?wait=60", json={"operation": "ocr", "input": "notes.txt"}
        ).json()
    assert job["status"] == "failed" and job["error"]["code"] == "IMAGE_PARSE_FAILED", job
