"""A JPEG crop decodes only the rows its window needs (worker.jpeg_region), with the same
pixels as an independent full decode (Pillow, EXIF turned by tests.images.upright) cut with
numpy, for every EXIF orientation; windows it cannot take decode in full as before."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from imagefleet.settings import load_settings
from jobs.crop import CropJob
from jobs.errors import ErrorCode, FleetError
from jobs.spec import Rect
from tests import images
from tests.images import CORPUS, running_record
from worker import codec
from worker.header_facts import Limits, open_image
from worker.inputs import decode_inputs
from worker.jpeg_region import decode_rows
from worker.ops.crop import crop

CFG = load_settings()
PHOTO = CORPUS / "2569067123_aca715a2ee_o.jpg"


def crop_job(data: bytes, x: int, y: int, width: int, height: int) -> tuple[np.ndarray, Any]:
    """The runner's path: decode_inputs for a crop record, then the handler."""
    spec = CropJob(input="in", rect=Rect(x=x, y=y, width=width, height=height))
    record = running_record(spec)
    pictures = decode_inputs(record, [data], CFG)
    output = crop(pictures, spec, CFG)
    assert output.picture is not None
    return output.picture.first, (pictures[0].source.get("window"), output.fields["crop"])


def independent(data: bytes, orientation: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    return images.upright(images.decode(data), orientation)[y : y + h, x : x + w]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_window_of_every_orientation(orientation: int) -> None:
    data = images.encode(images.photo_like(301, 203, seed=orientation), "JPEG", orientation)
    upright_w, upright_h = (203, 301) if orientation >= 5 else (301, 203)
    for x, y, w, h in [(17, 9, 60, 41), (0, 0, upright_w, 33), (5, upright_h - 50, 70, 50)]:
        pixels, (window, reported) = crop_job(data, x, y, w, h)
        assert window == [x, y, w, h]  # decoded as a window, not in full
        assert reported == {"x": x, "y": y, "width": w, "height": h}
        assert np.array_equal(pixels, independent(data, orientation, x, y, w, h))


def test_same_pixels_as_the_full_decode_path() -> None:
    """libjpeg-turbo through Pillow (the window) and through simplejpeg (the full decode)
    give the same pixels."""
    data = images.encode(images.photo_like(640, 480, seed=3), "JPEG", quality=85)
    pixels, _ = crop_job(data, 100, 50, 300, 200)
    full = codec.decode(data, codec.Limits()).first
    assert np.array_equal(pixels, full[50:250, 100:400])


def test_rows_stop_at_the_window() -> None:
    """Only the rows down to the window's bottom are decoded."""
    data = images.encode(images.photo_like(320, 240, seed=4), "JPEG")
    image = open_image(data, Limits(), False, 0).image
    rows = decode_rows(data, image, 37)
    assert rows is not None and rows.size == (320, 37)
    assert np.array_equal(np.asarray(rows), images.decode(data)[:37])


def test_outside_the_image_is_still_the_crops_error() -> None:
    data = images.encode(images.photo_like(120, 80), "JPEG")
    with pytest.raises(FleetError) as caught:
        crop_job(data, 100, 10, 40, 20)
    assert caught.value.code == ErrorCode.CROP_OUT_OF_BOUNDS


@pytest.mark.parametrize("y", [0, 250])  # rows the cut file has, and rows it lacks
def test_truncated_jpeg_fails_as_before(y: int) -> None:
    data = images.encode(images.photo_like(400, 300), "JPEG")
    with pytest.raises(FleetError) as caught:
        crop_job(data[: len(data) // 2], 0, y, 50, 40)
    assert caught.value.code == ErrorCode.IMAGE_PARSE_FAILED


def test_png_crops_from_a_full_decode() -> None:
    pixels = images.photo_like(90, 70)
    cut, (window, _) = crop_job(images.encode(pixels, "PNG"), 10, 5, 30, 20)
    assert window is None and np.array_equal(cut, pixels[5:25, 10:40])


@pytest.mark.skipif(not PHOTO.exists(), reason="shared corpus not present")
def test_corpus_photo_window() -> None:
    data = PHOTO.read_bytes()
    pixels, (window, _) = crop_job(data, 100, 50, 800, 600)
    assert window == [100, 50, 800, 600]
    assert np.array_equal(pixels, independent(data, 1, 100, 50, 800, 600))
