"""Every raster a job will create, known and bounded before anything is decoded.

A job's plan is computed from its spec and its inputs' headers (the pages and frames it
will really read), at submission by the gateway and again by the worker before it decodes.
The same plan sets the bill: the larger of the metered inputs' megapixels and the
megapixels of every raster the job's steps create, added up. For an ordinary job (a
shrink, a crop, a filter) that is the input's size, as before; a 2x2 input resized to
10000x10000 is billed for the 100 MP it creates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from jobs.errors import ErrorCode, FleetError

if TYPE_CHECKING:
    from jobs.policy import Policy
    from jobs.spec import JobSpec

# One step: (width, height) in -> (what, size) of each image it makes, its output last.
Stages = Callable[[int, int], list[tuple[str, tuple[int, int]]]]


class PageSizes(Protocol):
    """What a header tells of an input's pages (billing.header.Header is one)."""

    @property
    def format(self) -> str: ...

    @property
    def frames(self) -> int: ...

    @property
    def scalable(self) -> bool: ...  # SVG, PDF: page sizes are at 72 dpi, drawn at `density`

    def page_size(self, page: int) -> tuple[int, int]: ...

    def largest(self) -> tuple[int, int]: ...


BASE_DPI = 72.0  # a vector input's declared size is its size in pixels at this density


def at_density(size: tuple[int, int], density: float) -> tuple[int, int]:
    """A vector page's pixel size (declared at 72 dpi) drawn at `density` dpi: what the
    quote bills and what the worker renders, one rule for both."""
    scale = density / BASE_DPI
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def dct_shrink(width: int, height: int, scale: float) -> int:
    """JPEG shrink-on-load: the largest 1/2^k decode still at least `scale` of the size
    (Pillow's draft rule; powers of two keep libjpeg's best IDCT quality). The worker
    decodes by it; flat reads meter what it decodes."""
    if scale >= 0.5:
        return 1
    fit = min(width // math.ceil(width * scale), height // math.ceil(height * scale))
    return next(k for k in (8, 4, 2, 1) if k <= fit)


@dataclass(frozen=True)
class Raster:
    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    def sized(self, size: tuple[int, int]) -> Raster:
        """A raster of another size with as many frames."""
        return Raster(size[0], size[1], self.frames)

    def describe(self) -> str:
        frames = f" x {self.frames} frames" if self.frames > 1 else ""
        return f"{self.width}x{self.height}{frames} = {self.pixels / 1e6:.1f} MP"


@dataclass(frozen=True)
class Limits:
    max_megapixels: float  # any one raster: a decoded input, an intermediate, the output
    max_work_megapixels: float  # all the rasters a job creates, added up
    max_frames: int

    @classmethod
    def of(cls, cfg: Policy) -> Limits:
        return cls(cfg.max_megapixels, cfg.max_work_megapixels, cfg.max_frames)


def _too_large(message: str) -> FleetError:
    return FleetError(ErrorCode.IMAGE_TOO_LARGE, message)


@dataclass(frozen=True)
class Plan:
    inputs: tuple[tuple[str, Raster], ...]  # (where, raster) of every decoded input
    created: tuple[tuple[str, Raster], ...]  # (what, raster) of every step's output
    metered: tuple[Raster, ...]  # the inputs billing meters

    def megapixels(self) -> float:
        """The billed megapixels: metered input or created rasters, the larger; min 1."""
        metered = sum(r.pixels for r in self.metered) / 1e6
        created = sum(r.pixels for _, r in self.created) / 1e6
        return max(1.0, metered, created)

    def check(self, limits: Limits) -> None:
        """IMAGE_TOO_LARGE naming the first raster, or the total, over the limits."""
        ceiling = limits.max_megapixels * 1e6
        for where, raster in self.inputs:
            if raster.pixels > ceiling or raster.frames > limits.max_frames:
                raise _too_large(
                    f"input {where} is {raster.describe()}; the limits are"
                    f" {limits.max_megapixels:g} MP and {limits.max_frames} frames"
                )
        for what, raster in self.created:
            if raster.pixels > ceiling:
                raise _too_large(
                    f"{what} would be {raster.describe()}; the limit is"
                    f" {limits.max_megapixels:g} MP per image"
                )
        work = sum(r.pixels for _, r in self.created) / 1e6
        if work > limits.max_work_megapixels:
            raise _too_large(
                f"the job would create {work:.1f} MP of images in all; the"
                f" limit is {limits.max_work_megapixels:g} MP per job"
            )


def chain(start: Raster, steps: list[Stages]) -> list[tuple[str, Raster]]:
    """Every image each step makes, step by step from `start`. Headers give the stored
    size and EXIF may turn the image upright first, so both orientations are tried; the
    one that creates more pixels counts (the worker computes the same from the same header)."""
    best: list[tuple[str, Raster]] = []
    for size in {(start.width, start.height), (start.height, start.width)}:
        made = []
        for step in steps:
            stages = step(*size)
            made += [(what, start.sized(made_size)) for what, made_size in stages]
            size = stages[-1][1]  # the step's output feeds the next step
        if not best or sum(r.pixels for _, r in made) > sum(r.pixels for _, r in best):
            best = made
    return best


def plan_of(
    spec: JobSpec,
    inputs: list[tuple[str, Raster]],
    metered: int,
    billed: list[Raster] | None = None,
) -> Plan:
    """The plan of a job whose inputs decode to `inputs` (in `spec.sources()` order);
    billing meters the first `metered` of them, as `billed` says (spec.metered_raster:
    a flat read meters the JPEG it decodes shrunk), else as they are."""
    rasters = [raster for _, raster in inputs]
    meter = rasters if billed is None else billed
    return Plan(tuple(inputs), tuple(spec.creates(rasters)), tuple(meter[:metered]))
