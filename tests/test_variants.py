"""The `variants` operation: one decode, many outputs, all written or none, billed the
input's megapixels once per variant plus what the steps create.

The in-process tests run the real runner path (`_execute`) on a directory store; the fleet
test submits over HTTP and compares the quote with the capture.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from PIL import Image

from imagefleet import client_cli
from imagefleet.client import Client
from imagefleet.settings import load_settings
from jobs.errors import FleetError
from jobs.rasters import Raster, plan_of
from jobs.records import JobRecord, JobStatus, new_job_id, now
from jobs.registry import decode_spec
from jobs.variants import VariantsJob
from storage import ObjectStore, open_store, tenant_key
from tests import images
from tests.fleet_harness import Fleet, wait_for_job
from worker import codec
from worker.formats import ensure_plugins
from worker.runner import _execute

CFG = load_settings({})
WIDTH, HEIGHT = 1200, 900
VARIANTS: list[dict[str, Any]] = [
    {
        "output": "v/a-320",
        "format": "auto",
        "quality": "auto",
        "steps": [{"operation": "resize", "width": 320, "fit": "inside"}],
    },
    {
        "output": "v/b-640.webp",
        "format": "webp",
        "quality": 90,
        "steps": [{"operation": "resize", "width": 640, "fit": "inside"}],
    },
    {
        "output": "v/c-sq.png",
        "format": "png",
        "steps": [{"operation": "resize", "width": 300, "height": 300}],
    },
    {"output": "v/d.jpg", "format": "jpeg", "quality": 92},
]
# What each variant makes, by the test's own arithmetic: (width, height) of its output and
# the megapixels of every image its steps create (cover scales to 400x300 before its cut).
# The plan counts each variant's steps in the orientation that creates more (a header's
# size may be stored sideways: EXIF turns it): here sideways, 900x1200.
EXPECTED_SIZES = [(320, 240), (640, 480), (300, 300), (WIDTH, HEIGHT)]
UPRIGHT = [320 * 240, 640 * 480, 400 * 300 + 300 * 300, 0]
SIDEWAYS = [320 * 427, 640 * 853, 300 * 400 + 300 * 300, 0]
STEPS_MP = sum(map(max, UPRIGHT, SIDEWAYS)) / 1e6


def _body(variants: list[dict[str, Any]] = VARIANTS, **more: Any) -> dict[str, Any]:
    return {"operation": "variants", "input": "photo.jpg", "variants": variants, **more}


def _spec(body: dict[str, Any]) -> VariantsJob:
    spec = decode_spec(msgspec.json.encode(body))
    assert isinstance(spec, VariantsJob)
    return spec


def test_the_issue_example_is_a_valid_spec() -> None:
    issue: list[dict[str, Any]] = [
        {
            "output": "photo-320.avif",
            "format": "avif",
            "steps": [{"operation": "resize", "width": 320}],
        },
        {
            "output": "photo-640.webp",
            "format": "webp",
            "quality": 80,
            "steps": [{"operation": "resize", "width": 640}],
        },
        {
            "output": "photo-1280.jpg",
            "format": "jpeg",
            "steps": [{"operation": "resize", "width": 1280}, {"operation": "sharpen"}],
        },
        {
            "output": "photo-sq.png",
            "format": "png",
            "steps": [{"operation": "crop", "gravity": "center", "width": 300, "height": 300}],
        },
    ]
    spec = _spec(_body(issue))
    assert [v.output for v in spec.variants] == [v["output"] for v in issue]
    assert [len(v.steps) for v in spec.variants] == [1, 1, 2, 1]


@pytest.mark.parametrize(
    ("step", "path"),
    [
        ({"operation": "resize", "width": 0}, "$.variants[2].steps[0].width"),
        ({"operation": "resize"}, "$.variants[2].steps[0]"),
        ({"operation": "metadata"}, "$.variants[2].steps[0].operation"),
        ({"operation": "blur", "radius": 3}, "$.variants[2].steps[0]"),
    ],
)
def test_a_bad_step_is_refused_with_its_path(step: dict[str, Any], path: str) -> None:
    variants = [dict(v) for v in VARIANTS]
    variants[2] = {**variants[2], "steps": [step]}
    with pytest.raises(msgspec.ValidationError) as refused:
        _spec(_body(variants))
    assert f"`{path}`" in str(refused.value)


def test_contradicting_output_fields_name_the_variant() -> None:
    variants = [*VARIANTS[:1], {"output": "x.jpg", "format": "webp", "ssim": 0.97}]
    with pytest.raises(msgspec.ValidationError, match=r"`ssim`.*`\$\.variants\[1\]`"):
        _spec(_body(variants))


def test_too_many_variants_are_refused_naming_the_limit() -> None:
    many = [{"output": f"o{i}.png", "format": "png"} for i in range(17)]
    with pytest.raises(FleetError) as refused:
        _spec(_body(many)).admit(CFG)
    assert refused.value.code.value == "VALIDATION_ERROR"
    assert "at most 16" in refused.value.message and "FLEET_MAX_VARIANTS" in refused.value.message
    _spec(_body(many[:16])).admit(CFG)  # the limit itself is fine
    fewer = load_settings({"FLEET_MAX_VARIANTS": "3"})
    with pytest.raises(FleetError, match="at most 3"):
        _spec(_body(many[:4])).admit(fewer)


def test_the_plan_bills_the_input_once_per_variant_plus_the_steps() -> None:
    plan = plan_of(_spec(_body()), [("$.input", Raster(WIDTH, HEIGHT))], 1)
    expected = len(VARIANTS) * WIDTH * HEIGHT / 1e6 + STEPS_MP
    assert plan.megapixels() == pytest.approx(expected)


def _record(spec: VariantsJob) -> JobRecord:
    created = now()
    return JobRecord(
        id=new_job_id(),
        tenant="t",
        operation="variants",
        status=JobStatus.RUNNING,
        spec=spec,
        created_at=created,
        updated_at=created,
        attempts=1,
    )


@pytest.fixture
def photo() -> bytes:
    return images.encode(images.photo_like(WIDTH, HEIGHT, seed=7), "JPEG", quality=95)


@pytest.fixture
def store(tmp_path: Path, photo: bytes) -> ObjectStore:
    objects = open_store(f"file://{tmp_path / 'objects'}")
    objects.put(tenant_key("t", "photo.jpg"), photo, "image/jpeg")
    return objects


def test_every_variant_is_written_from_one_decode(
    store: ObjectStore, photo: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes = []
    real = codec.decode

    def counted(*args: Any, **kwargs: Any) -> Any:
        decodes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, "decode", counted)
    result = _execute(_record(_spec(_body())), store, CFG)
    assert len(decodes) == 1
    rows = result["variants"]
    chosen = rows[0]["format"]
    keys = [f"v/a-320.{codec.extension(chosen)}", "v/b-640.webp", "v/c-sq.png", "v/d.jpg"]
    assert [row["output"] for row in rows] == keys
    assert [row["format"] for row in rows[1:]] == ["webp", "png", "jpeg"]
    assert "quality" in rows[0] and "quality" not in rows[1]  # chosen, or given
    source = Image.open(io.BytesIO(photo)).convert("RGB")
    ensure_plugins()
    for row, size in zip(rows, EXPECTED_SIZES, strict=True):
        data = store.get(tenant_key("t", row["output"]))
        assert row["bytes"] == len(data)
        image = Image.open(io.BytesIO(data))
        assert str(image.format).lower() == {"jpeg": "jpeg"}.get(row["format"], row["format"])
        assert image.size == size == (row["width"], row["height"])
        # An independent resize (Pillow's Lanczos; the square: scale to 400x300, cut the
        # middle) looks the same.
        if size == (300, 300):
            expected = source.resize((400, 300), Image.Resampling.LANCZOS).crop((50, 0, 350, 300))
        else:
            expected = source.resize(size, Image.Resampling.LANCZOS)
        diff = images.mean_abs_diff(np.asarray(image.convert("RGB")), np.asarray(expected))
        assert diff < 3.0, (row["output"], diff)


class _FailingStore:
    """A real store whose `put` fails from the `fail_at`-th write on (a full disk, say)."""

    def __init__(self, inner: ObjectStore, fail_at: int) -> None:
        self.inner, self.fail_at, self.puts = inner, fail_at, 0

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.puts += 1
        if self.puts >= self.fail_at:
            raise OSError("no space left on device")
        self.inner.put(key, data, content_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failed_write_leaves_no_variant(store: ObjectStore) -> None:
    failing = _FailingStore(store, fail_at=3)
    with pytest.raises(OSError, match="no space"):
        _execute(_record(_spec(_body(VARIANTS[1:]))), failing, CFG)
    assert failing.puts == 3  # two written, the third failed
    for variant in VARIANTS[1:]:
        assert store.stat(tenant_key("t", variant["output"])) is None


@pytest.mark.fleet
def test_fleet_quote_equals_capture_and_outputs_exist(dir_fleet: Fleet, photo: bytes) -> None:
    with dir_fleet.client() as client:
        assert client.put("/v1/objects/photo.jpg", content=photo).status_code == 201
        submitted = client.post("/v1/jobs", json=_body())
        assert submitted.status_code == 202, submitted.text
        job = wait_for_job(client, submitted.json()["id"], timeout=120)
        assert job["status"] == "succeeded", job
        expected_mp = len(VARIANTS) * WIDTH * HEIGHT / 1e6 + STEPS_MP
        billing = job["billing"]
        assert billing["megapixels"] == pytest.approx(expected_mp)
        assert billing["quoted_micros"] == billing["charged_micros"] == -(-300 * expected_mp // 1)
        for row, size in zip(job["result"]["variants"], EXPECTED_SIZES, strict=True):
            got = client.get(f"/v1/objects/{row['output']}")
            assert got.status_code == 200
            assert Image.open(io.BytesIO(got.content)).size == size
        too_many = [{"output": f"o{i}.png", "format": "png"} for i in range(17)]
        refused = client.post("/v1/jobs", json=_body(too_many))
        assert refused.status_code == 400
        assert "at most 16" in refused.json()["error"]["message"]
        bad = [dict(v) for v in VARIANTS]
        bad[2] = {**bad[2], "steps": [{"operation": "resize", "width": -1}]}
        refused = client.post("/v1/jobs", json=_body(bad))
        assert refused.status_code == 400
        assert "$.variants[2].steps[0].width" in refused.json()["error"]["message"]


@pytest.mark.fleet
def test_cli_batch_writes_variants_and_the_client_runs_them(
    dir_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for i in range(2):
        (src / f"img{i}.png").write_bytes(images.encode(images.photo_like(200, 100, seed=i)))
    spec = tmp_path / "variants.json"
    spec.write_text(
        msgspec.json.encode(
            [
                {
                    "output": "80.webp",
                    "format": "webp",
                    "steps": [{"operation": "resize", "width": 80}],
                },
                {"output": "{stem}-sq", "format": "auto", "quality": "auto", "ssim": 0.97},
            ]
        ).decode()
    )
    parser = argparse.ArgumentParser(prog="imagefleet")
    client_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    prefix = f"vb-{new_job_id()[-8:]}"
    argv = ["batch", "--url", dir_fleet.base_url, "--key", dir_fleet.api_key, str(src)]
    args = parser.parse_args(
        [*argv, "--variants", str(spec), "--out", str(out), "--prefix", prefix]
    )
    assert args.func(args) == 0, capsys.readouterr()
    names = sorted(p.name for p in out.iterdir())
    auto = sorted(n for n in names if "-sq." in n)
    assert [n for n in names if n.endswith("-80.webp")] == ["img0-80.webp", "img1-80.webp"]
    assert [n.split(".")[0] for n in auto] == ["img0-sq", "img1-sq"]
    assert Image.open(out / "img0-80.webp").size == (80, 40)
    assert Image.open(out / auto[0]).size == (200, 100)

    with Client(dir_fleet.base_url, dir_fleet.api_key) as client:
        job = _spec(
            {
                "operation": "variants",
                "input": f"{prefix}/img1.png",
                "variants": [{"output": f"{prefix}/c/one.png", "format": "png"}],
            }
        )
        assert callable(getattr(client, "variants", None))  # named from the registry
        done = client.run(job)
        assert done.ok and done.result is not None
        assert done.result["variants"][0]["output"] == f"{prefix}/c/one.png"


def test_the_decode_shrinks_only_as_far_as_every_variant_allows() -> None:
    # 320 and 1280 wide from 2560: the 1280 needs half size (a JPEG decodes at 1/2).
    shrinking = _spec(
        _body(VARIANTS[:2] + [{**VARIANTS[1], "steps": [{"operation": "resize", "width": 1280}]}])
    )
    assert shrinking.decode_scale(2560, 1920) == pytest.approx(0.5)
    assert _spec(_body()).decode_scale(2560, 1920) == 1.0  # one variant re-encodes the input
