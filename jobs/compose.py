"""Specs of the operations that combine images: composite, contact-sheet."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

import msgspec
from msgspec import Meta

from jobs.declare import operation
from jobs.pools import Pool
from jobs.rasters import Raster
from jobs.spec import (
    DEFAULT_QUALITY,
    U32,
    Color,
    Dimension,
    InputSource,
    JobSpec,
    ObjectKey,
    OutputFormat,
    PositiveU32,
    Quality,
    TransformJob,
    UnitInterval,
)

Placement = Literal[
    "center", "north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest"
]


@operation(Pool.CPU, example={"overlay": "logo.png", "gravity": "southeast", "opacity": 0.8})
class CompositeJob(TransformJob, tag="composite", kw_only=True):
    """Lay `overlay` over the input at a `gravity` or at (`top`, `left`), with `opacity`."""

    overlay: InputSource
    gravity: Placement | None = None
    top: int | None = None
    left: int | None = None
    opacity: UnitInterval = 1.0

    def __post_init__(self) -> None:
        if (self.top is None) != (self.left is None):
            raise ValueError("give both `top` and `left`, or neither")
        if self.gravity is not None and self.top is not None:
            raise ValueError("give `gravity` or (`top`, `left`), not both")

    def sources(self) -> list[tuple[str, InputSource]]:
        return [("$.input", self.input), ("$.overlay", self.overlay)]

    def with_sources(self, sources: list[InputSource]) -> Self:
        return msgspec.structs.replace(self, input=sources[0], overlay=sources[1])


@operation(
    Pool.CPU,
    example={"files": ["photo.jpg", "logo.png"], "columns": 2, "cellWidth": 240, "cellHeight": 180},
    bills_all_inputs=True,
)
class ContactSheetJob(JobSpec, tag="contact-sheet", kw_only=True):
    """Tile `files` into a grid of `cellWidth x cellHeight` cells (each image fitted inside)."""

    files: Annotated[list[InputSource], Meta(min_length=1, max_length=100)]
    columns: PositiveU32 | None = None  # default: a near-square grid
    cell_width: Dimension = msgspec.field(default=200, name="cellWidth")
    cell_height: Dimension = msgspec.field(default=200, name="cellHeight")
    gap: U32 = 10
    background: Color | None = None
    output: ObjectKey | None = None
    format: OutputFormat = "png"
    quality: Quality = DEFAULT_QUALITY
    inline: bool = False

    def sources(self) -> list[tuple[str, InputSource]]:
        return [(f"$.files[{i}]", source) for i, source in enumerate(self.files)]

    def grid(self) -> tuple[int, int]:
        """(columns, rows): near-square by default; never more columns than images."""
        n = len(self.files)
        cols = min(self.columns or math.ceil(math.sqrt(n)), n)
        return cols, math.ceil(n / cols)

    def sheet_size(self) -> tuple[int, int]:
        cols, rows = self.grid()
        return (
            cols * self.cell_width + (cols + 1) * self.gap,
            rows * self.cell_height + (rows + 1) * self.gap,
        )

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        cell = Raster(self.cell_width, self.cell_height)  # each image is fitted inside one
        return [
            *[(f"cell {i}", cell) for i in range(len(inputs))],
            ("the contact sheet", Raster(*self.sheet_size())),
        ]

    def with_sources(self, sources: list[InputSource]) -> Self:
        return msgspec.structs.replace(self, files=list(sources))
