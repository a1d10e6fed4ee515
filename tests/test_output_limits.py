"""Operations that grow an image refuse, before allocating, an output over the limit."""

from __future__ import annotations

import numpy as np
import pytest

from imagefleet.settings import load_settings
from jobs.compose import ContactSheetJob
from jobs.errors import ErrorCode, FleetError
from jobs.geometry import ExtendJob, ResizeJob, RotateJob
from worker.ops.contact_sheet import contact_sheet
from worker.ops.extend import extend
from worker.ops.resize import resize
from worker.ops.rotate import rotate
from worker.picture import Picture

LIMIT = 10_000  # pixels
CFG = load_settings()  # the handlers' third argument


def small(frames: int = 1) -> Picture:
    return Picture(
        frames=[np.zeros((50, 50, 3), np.uint8)] * frames, format="png", max_pixels=LIMIT
    )


@pytest.mark.parametrize(
    ("run", "picture"),
    [
        (
            lambda p: resize([p], ResizeJob(input="x", width=101, height=100, fit="fill"), CFG),
            small(),
        ),
        (lambda p: resize([p], ResizeJob(input="x", width=60, fit="inside"), CFG), small(3)),
        (lambda p: extend([p], ExtendJob(input="x", right=60000), CFG), small()),
        (
            lambda p: rotate([p], RotateJob(input="x", angle=45), CFG),
            Picture(frames=[np.zeros((1, 9000, 3), np.uint8)], format="png", max_pixels=LIMIT),
        ),
        (
            lambda p: contact_sheet(
                [p] * 4,
                ContactSheetJob(files=["x"] * 4, cell_width=60, cell_height=60, gap=0),
                CFG,
            ),
            small(),
        ),
    ],
)
def test_oversized_outputs_are_refused(run, picture: Picture) -> None:  # noqa: ANN001
    with pytest.raises(FleetError) as caught:
        run(picture)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "MP" in caught.value.message


def test_outputs_at_the_limit_are_fine() -> None:
    out = resize([small()], ResizeJob(input="x", width=100, height=100, fit="fill"), CFG)
    assert out.picture is not None and out.picture.first.shape == (100, 100, 3)
