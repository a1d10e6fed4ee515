"""Unit tests for the job-spec validation (jobs.spec, jobs.crop) and the operation registry."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import msgspec
import pytest

from jobs.crop import CropJob
from jobs.pools import JOB_POOLS
from jobs.registry import OPERATIONS, decode_spec, operation_of
from jobs.spec import InputRef, Rect

RECT: dict[str, int] = {"x": 0, "y": 0, "width": 10, "height": 10}


def rect_job(**fields: Any) -> dict[str, Any]:
    """A valid rect crop, with `fields` merged in (None values delete the key)."""
    body: dict[str, Any] = {"operation": "crop", "input": "photo.jpg", "rect": dict(RECT)}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def gravity_job(**fields: Any) -> dict[str, Any]:
    """A valid gravity crop, with `fields` merged in (None values delete the key)."""
    body: dict[str, Any] = {
        "operation": "crop",
        "input": "photo.jpg",
        "gravity": "center",
        "width": 4,
        "height": 3,
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def decode(body: dict[str, Any] | list[Any]) -> Any:
    return decode_spec(json.dumps(body).encode())


def error_of(body: dict[str, Any]) -> str:
    """The validation message for an invalid body (fails the test if it decodes)."""
    with pytest.raises(msgspec.ValidationError) as info:
        decode(body)
    return str(info.value)


# (case id, body, expected path in the message)
FIELD_RULES: list[tuple[str, dict[str, Any], str]] = [
    ("operation-unknown", rect_job(operation="sepia"), "`$.operation`"),
    ("operation-not-string", rect_job(operation=3), "`$.operation`"),
    ("input-empty-key", rect_job(input=""), "`$.input`"),
    ("input-too-long", rect_job(input="k" * 1025), "`$.input`"),
    ("input-number", rect_job(input=5), "`$.input`"),
    ("input-url-object", rect_job(input={"url": "http://example.com/a.jpg"}), "`$.input`"),
    ("input-neither", rect_job(input={}), "`$.input`"),
    ("input-both", rect_job(input={"inline": "aGk=", "inputKey": "k"}), "`$.input`"),
    ("input-inline-not-base64", rect_job(input={"inline": "!!not base64!!"}), "`$.input.inline`"),
    ("input-inputKey-empty", rect_job(input={"inputKey": ""}), "`$.input.inputKey`"),
    ("output-empty", rect_job(output=""), "`$.output`"),
    ("output-too-long", rect_job(output="o" * 1025), "`$.output`"),
    ("rect-x-negative", rect_job(rect={**RECT, "x": -1}), "`$.rect.x`"),
    ("rect-y-negative", rect_job(rect={**RECT, "y": -1}), "`$.rect.y`"),
    ("rect-x-string", rect_job(rect={**RECT, "x": "1"}), "`$.rect.x`"),
    ("rect-x-float", rect_job(rect={**RECT, "x": 1.5}), "`$.rect.x`"),
    ("rect-width-zero", rect_job(rect={**RECT, "width": 0}), "`$.rect.width`"),
    ("rect-height-zero", rect_job(rect={**RECT, "height": 0}), "`$.rect.height`"),
    ("rect-missing-height", rect_job(rect={"x": 0, "y": 0, "width": 1}), "`$.rect`"),
    ("rect-unknown-field", rect_job(rect={**RECT, "depth": 1}), "`$.rect`"),
    ("gravity-unknown", gravity_job(gravity="north"), "`$.gravity`"),
    ("focal_x-below", gravity_job(gravity="focal_point", focal_x=-0.01), "`$.focal_x`"),
    ("focal_x-above", gravity_job(gravity="focal_point", focal_x=1.01), "`$.focal_x`"),
    ("focal_y-below", gravity_job(gravity="focal_point", focal_y=-0.5), "`$.focal_y`"),
    ("focal_y-above", gravity_job(gravity="focal_point", focal_y=2), "`$.focal_y`"),
    ("width-zero", gravity_job(width=0), "`$.width`"),
    ("height-zero", gravity_job(height=0), "`$.height`"),
    ("format-gif", rect_job(format="gif"), "`$.format`"),
    ("format-jpg-alias", rect_job(format="jpg"), "`$.format`"),
    ("format-uppercase", rect_job(format="PNG"), "`$.format`"),
    ("quality-zero", rect_job(quality=0), "`$.quality`"),
    ("quality-101", rect_job(quality=101), "`$.quality`"),
    ("quality-float", rect_job(quality=90.5), "`$.quality`"),
    ("quality-bool", rect_job(quality=True), "`$.quality`"),
    ("inline-string", rect_job(inline="yes"), "`$.inline`"),
]


@pytest.mark.parametrize(
    ("body", "path"), [(b, p) for _, b, p in FIELD_RULES], ids=[c for c, _, _ in FIELD_RULES]
)
def test_field_rule_names_path(body: dict[str, Any], path: str) -> None:
    """Each per-field rule rejects the body with a message naming the field's path."""
    assert path in error_of(body)


# (case id, body, words the message must contain)
ROOT_RULES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("rect-and-gravity", rect_job(gravity="center", width=1, height=1), ["`rect`", "`gravity`"]),
    ("neither-rect-nor-gravity", rect_job(rect=None), ["`rect`", "`gravity`"]),
    ("gravity-without-width", gravity_job(width=None), ["`width`", "`height`", "`gravity`"]),
    ("gravity-without-height", gravity_job(height=None), ["`width`", "`height`", "`gravity`"]),
    ("gravity-without-both", gravity_job(width=None, height=None), ["`width`", "`gravity`"]),
    ("rect-with-width", rect_job(width=5), ["`width`", "rect"]),
    ("rect-with-height", rect_job(height=5), ["`height`", "rect"]),
    ("unknown-top-level-field", rect_job(colour="red"), ["`colour`"]),
    ("missing-operation", rect_job(operation=None), ["`operation`"]),
    ("missing-input", rect_job(input=None), ["`input`"]),
]


@pytest.mark.parametrize(
    ("body", "words"), [(b, w) for _, b, w in ROOT_RULES], ids=[c for c, _, _ in ROOT_RULES]
)
def test_root_rule_names_fields(body: dict[str, Any], words: list[str]) -> None:
    """Rules spanning fields (or the whole object) name every field involved."""
    message = error_of(body)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_non_object_body_rejected() -> None:
    """A JSON array is not a job spec."""
    with pytest.raises(msgspec.ValidationError, match="object"):
        decode([])


def test_rect_job_defaults() -> None:
    """A minimal rect job decodes with the documented defaults."""
    spec = decode(rect_job())
    assert isinstance(spec, CropJob)
    assert spec.rect == Rect(0, 0, 10, 10)
    assert (spec.gravity, spec.width, spec.height) == (None, None, None)
    assert spec.focal_x == 0.5 and spec.focal_y == 0.5
    assert spec.quality == 85
    assert spec.format is None
    assert spec.inline is False
    assert spec.output is None
    assert spec.input == "photo.jpg"


@pytest.mark.parametrize("gravity", ["center", "focal_point", "entropy"])
def test_gravity_job_defaults(gravity: str) -> None:
    """Every gravity decodes, carrying width/height and the default focal point."""
    spec = decode(gravity_job(gravity=gravity))
    assert spec.gravity == gravity and spec.rect is None
    assert (spec.width, spec.height) == (4, 3)
    assert (spec.focal_x, spec.focal_y, spec.quality, spec.format, spec.inline) == (
        0.5,
        0.5,
        85,
        None,
        False,
    )


def test_example_job_from_spec_doc() -> None:
    """The crop document's example decodes exactly as written."""
    spec = decode(
        {
            "operation": "crop",
            "input": "photo.jpg",
            "output": "cropped.jpg",
            "rect": {"x": 100, "y": 50, "width": 800, "height": 600},
            "format": "jpeg",
            "quality": 90,
        }
    )
    assert isinstance(spec, CropJob)
    assert spec.input == "photo.jpg" and spec.output == "cropped.jpg"
    assert spec.rect == Rect(x=100, y=50, width=800, height=600)
    assert spec.format == "jpeg" and spec.quality == 90
    assert spec.gravity is None and spec.inline is False
    assert operation_of(spec).name == "crop"


@pytest.mark.parametrize(
    ("fields", "attr", "value"),
    [
        ({"quality": 1}, "quality", 1),
        ({"quality": 100}, "quality", 100),
        ({"format": None}, "format", None),
        ({"format": "png"}, "format", "png"),
        ({"format": "webp"}, "format", "webp"),
        ({"format": "avif"}, "format", "avif"),
        ({"inline": True}, "inline", True),
        ({"output": "out/x.png"}, "output", "out/x.png"),
        (
            {"rect": {"x": 2**32 - 1, "y": 0, "width": 1, "height": 1}},
            "rect",
            Rect(2**32 - 1, 0, 1, 1),
        ),
    ],
)
def test_boundary_values_accepted(fields: dict[str, Any], attr: str, value: Any) -> None:
    """Values at the edge of each documented range are valid."""
    assert getattr(decode(rect_job(**fields)), attr) == value


@pytest.mark.parametrize(("fx", "fy"), [(0, 0), (1, 1), (0, 1), (1.0, 0.0), (0.25, 0.75)])
def test_focal_range_inclusive(fx: float, fy: float) -> None:
    """focal_x and focal_y accept the closed interval [0, 1]."""
    spec = decode(gravity_job(gravity="focal_point", focal_x=fx, focal_y=fy))
    assert (spec.focal_x, spec.focal_y) == (fx, fy)


def test_input_inline_and_input_key() -> None:
    """`{"inline": base64}` decodes to bytes; `{"inputKey": k}` keeps the key."""
    inline = decode(rect_job(input={"inline": "aGVsbG8="}))
    assert inline.input == InputRef(inline=b"hello")
    upload = decode(rect_job(input={"inputKey": "uploads/abc"}))
    assert upload.input == InputRef(input_key="uploads/abc")
    assert upload.input.inline is None


def test_registry_rows_are_consistent() -> None:
    """Every operation: tag == key, a known queue, a positive price and an importable handler."""
    assert OPERATIONS, "the registry is empty"
    for name, op in OPERATIONS.items():
        assert op.name == name
        assert op.spec.__struct_config__.tag == name
        assert op.queue in JOB_POOLS
        assert op.billing.price(1.0) > 0
        assert op.billing.price(0.5) > 0
        assert callable(op.load_handler())
        assert 0 < op.soft_time_limit < op.time_limit


def test_gateway_does_not_import_heavy_libraries() -> None:
    """Importing the gateway app must not pull in image, OCR or browser libraries."""
    code = (
        "import sys, gateway.app\n"
        "heavy = ('PIL', 'numpy', 'cv2', 'tesserocr', 'pyppeteer')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"gateway imported: {proc.stdout.strip()}"
