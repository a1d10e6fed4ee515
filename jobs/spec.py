"""The job-spec bases: common fields, input sources, colours and reusable constrained types.

Every operation's spec subclasses `JobSpec` (tagged by `operation`, unknown fields rejected)
and takes only the fields its operation reads: `ImageJob` reads one input image,
`TransformJob` also makes one image from it (and takes the output's fields). A field a spec
does not take reads as its fixed value (a property of the base), so code that handles every
spec need not ask which kind it has. Rules that span two fields live in `__post_init__`,
whose message names the fields (msgspec adds the path: `$.steps[1]` inside a pipeline).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, Self

import msgspec
from msgspec import Meta

from jobs.errors import ErrorCode, FleetError
from jobs.media import FORMAT_OF_EXTENSION, extension
from jobs.operation import Operation
from jobs.rasters import BASE_DPI, PageSizes, Raster, at_density, chain

if TYPE_CHECKING:
    from jobs.policy import Policy

U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
PositiveU32 = Annotated[int, Meta(ge=1, le=2**32 - 1)]
Dimension = Annotated[int, Meta(ge=1, le=65535)]
Byte = Annotated[int, Meta(ge=0, le=255)]
UnitInterval = Annotated[float, Meta(ge=0.0, le=1.0)]
Quality = Annotated[int, Meta(ge=1, le=100)]
ObjectKey = Annotated[str, Meta(min_length=1, max_length=1024)]
OutputFormat = Literal["png", "jpeg", "webp", "avif", "jxl"]
# "auto": chosen by the worker (worker/quality.py): the smallest file meeting the SSIM target.
FormatChoice = Literal["png", "jpeg", "webp", "avif", "jxl", "auto"]
QualityChoice = Quality | Literal["auto"]
# Mean SSIM of the output's luma against the picture encoded (worker/quality.py).
SsimTarget = Annotated[float, Meta(ge=0.5, le=0.999)]
DEFAULT_SSIM = 0.98
# dpi at which vector inputs (SVG, PDF pages) are drawn: 72 (their declared size) by default.
Density = Annotated[float, Meta(ge=1, le=10_000)]
HexColor = Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")]
DEFAULT_QUALITY = 85


class InputRef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """`{"inline": "<base64>"}` (small inputs) or `{"inputKey": "..."}` (from an upload)."""

    inline: bytes | None = None
    input_key: ObjectKey | None = msgspec.field(default=None, name="inputKey")

    def __post_init__(self) -> None:
        if (self.inline is None) == (self.input_key is None):
            raise ValueError("give exactly one of `inline` or `inputKey`")


# A key in the caller's namespace ("photo.jpg"), inline bytes, or an upload's key. Never a URL.
InputSource = ObjectKey | InputRef


class Rect(msgspec.Struct, forbid_unknown_fields=True):
    """A pixel rectangle: crop's `rect`, from-html's `clip`."""

    x: U32
    y: U32
    width: PositiveU32
    height: PositiveU32


class RGB(msgspec.Struct, forbid_unknown_fields=True):
    r: Byte
    g: Byte
    b: Byte


class RGBA(msgspec.Struct, forbid_unknown_fields=True):
    r: Byte
    g: Byte
    b: Byte
    alpha: UnitInterval = 1.0


# "#rrggbb" or {"r", "g", "b", "alpha"?} (alpha 0..1, as in sharp).
Color = HexColor | RGBA


def rgba_of(color: Color | None, default: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """A colour as 0..255 RGBA."""
    if color is None:
        return default
    if isinstance(color, str):
        return (int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16), 255)
    return (color.r, color.g, color.b, round(color.alpha * 255))


class JobSpec(msgspec.Struct, tag_field="operation", forbid_unknown_fields=True, kw_only=True):
    """Fields every job has."""

    webhook_url: str | None = None
    # The operation this spec is, set by its `@operation(...)` (jobs/operation.py).
    declared: ClassVar[Operation | None] = None

    @property
    def output(self) -> str | None:
        """The output's key: none for operations whose result is facts, not an image."""
        return None

    @property
    def inline(self) -> bool:
        return False

    @property
    def decodes_pixels(self) -> bool:
        """Whether the job decodes its input (a flat read that does is metered over the
        ceiling, jobs/prices.py); metadata reads only the header unless told otherwise."""
        return True

    def sources(self) -> list[tuple[str, InputSource]]:
        """The input sources this job reads, with their JSON paths."""
        return []

    def with_sources(self, sources: list[InputSource]) -> Self:
        """A copy whose sources (in `sources()` order) are replaced."""
        return self

    def admit(self, cfg: Policy) -> None:
        """Checks that need the operator's config (rosters, size limits), at submission;
        raise FleetError to refuse the job before anything is charged or stored."""

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        """(what, raster) of every image this job creates from inputs of these sizes."""
        return []

    def walks_pages(self, index: int) -> bool:
        """Whether reading input `index` goes past its first page or frame."""
        return False

    def input_raster(self, index: int, header: PageSizes) -> Raster:
        """What decoding input `index` creates: its first page, unless the spec says."""
        return Raster(*header.page_size(0))

    def metered_raster(self, index: int, header: PageSizes) -> Raster:
        """What billing meters of input `index`: its input raster, unless the spec says."""
        return self.input_raster(index, header)


# Formats whose page N is reached by decoding frames 0 to N (Pillow's GIF, WebP and APNG
# seeks): reading it is planned, limited and billed as those N + 1 frames.
SEEKS_BY_DECODING = frozenset({"gif", "webp", "png"})


def _largest_up_to(header: PageSizes, last: int) -> tuple[int, int]:
    sizes = [header.page_size(index) for index in range(last + 1)]
    return max(sizes, key=lambda size: size[0] * size[1])


class ImageJob(JobSpec, kw_only=True):
    """A job that reads one input image (its first page or frame, or every frame)."""

    input: InputSource
    density: Density | None = None  # SVG / PDF inputs drawn at this dpi (default 72)
    # True for operations that report every frame's timing without decoding every frame.
    reads_timeline: ClassVar[bool] = False
    # True for operations that always read every page (OCR of a multi-page TIFF).
    reads_all_pages: ClassVar[bool] = False

    @property
    def page(self) -> int:
        """The page or frame to read, for operations that let the caller choose."""
        return 0

    @property
    def animated(self) -> bool:
        """Whether to read every frame, for operations that let the caller choose."""
        return False

    def admit(self, cfg: Policy) -> None:
        # Reaching page N of an animation decodes the N frames before it (GIF, WebP, APNG
        # seek frame by frame): a page is bounded like the frames read, before any seek.
        if self.page >= cfg.max_frames:
            raise FleetError(
                ErrorCode.VALIDATION_ERROR,
                f"page {self.page} is past the frame limit: pages 0 to {cfg.max_frames - 1}"
                f" may be read (FLEET_MAX_FRAMES is {cfg.max_frames}) - at `$.page`",
            )

    def sources(self) -> list[tuple[str, InputSource]]:
        return [("$.input", self.input)]

    def with_sources(self, sources: list[InputSource]) -> Self:
        return msgspec.structs.replace(self, input=sources[0])

    def walks_pages(self, index: int) -> bool:
        return index == 0 and (
            self.animated or self.reads_all_pages or self.reads_timeline or self.page > 0
        )

    def dpi(self, index: int) -> float:
        """The density input `index` is drawn at, if it is vector: `density` is the main
        input's; other inputs (overlays, cells) are drawn at their declared size."""
        return (self.density or BASE_DPI) if index == 0 else BASE_DPI

    def input_raster(self, index: int, header: PageSizes) -> Raster:
        if header.scalable:  # a vector page: drawn at the job's density, never walked
            page = self.page if index == 0 else 0
            if page >= header.frames:
                where = "$.page" if index == 0 else self.sources()[index][0]
                raise FleetError(
                    ErrorCode.VALIDATION_ERROR,
                    f"page {page} is past the last page; the document has {header.frames}"
                    f" page{'s' if header.frames != 1 else ''} - at `{where}`",
                )
            return Raster(*at_density(header.page_size(page), self.dpi(index)))
        if index > 0:  # page and animated apply to the main input
            return super().input_raster(index, header)
        if self.animated or self.reads_all_pages:  # every frame, each at most the largest
            return Raster(*header.largest(), header.frames)
        if self.reads_timeline:  # frames decoded one after another for their timing
            return Raster(*header.largest())
        if self.page > 0 and header.format in SEEKS_BY_DECODING:  # every frame up to it
            last = min(self.page, header.frames - 1)  # (past the last: the worker says so)
            return Raster(*_largest_up_to(header, last), last + 1)
        return Raster(*header.page_size(self.page))

    def decode_scale(self, width: int, height: int) -> float:
        """The smallest scale (<= 1) of an upright `width x height` input this job can work
        from: JPEG decodes at 1/2, 1/4 or 1/8 size when that suffices (shrink-on-load)."""
        return 1.0


class TransformJob(ImageJob, kw_only=True):
    """A job that makes one image from one input image (every frame, with `animated`)."""

    page: U32 = 0  # multi-page TIFF / animation frame to read when not `animated`
    animated: bool = False  # read and process every frame of an animated GIF/WebP
    output: ObjectKey | None = None
    format: FormatChoice | None = None
    quality: QualityChoice = DEFAULT_QUALITY
    accept: Annotated[list[OutputFormat], Meta(min_length=1)] | None = None  # format auto's
    ssim: SsimTarget | None = None  # the target of format or quality auto (default 0.98)
    inline: bool = False

    def admit(self, cfg: Policy) -> None:
        super().admit(cfg)
        problem = choice_problem(self.output, self.format, self.quality, self.accept, self.ssim)
        if problem:
            message, field = problem
            raise FleetError(ErrorCode.VALIDATION_ERROR, f"{message} - at `$.{field}`")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """The size of this operation's output from an upright `width x height` input
        (an upper bound where the content decides, as for trim)."""
        return width, height

    def stages(self, width: int, height: int) -> list[tuple[str, tuple[int, int]]]:
        """(what, size) of every image this operation makes, its output last."""
        return [(f"the {self.__struct_config__.tag} output", self.output_size(width, height))]

    def creates(self, inputs: list[Raster]) -> list[tuple[str, Raster]]:
        return chain(inputs[0], [self.stages])


class PipelineStep(msgspec.Struct, tag_field="operation", forbid_unknown_fields=True, kw_only=True):
    """A step of a pipeline: a TransformJob's own fields, without the input and output that
    the pipeline has (jobs/operation.py derives one from each step operation's spec)."""

    job_spec: ClassVar[type[TransformJob]]

    def job(self, input: InputSource) -> TransformJob:
        """The step as a job spec reading `input` (what its handler and its plan take)."""
        fields = {name: getattr(self, name) for name in self.__struct_fields__}
        return self.job_spec(input=input, **fields)


def extension_format(key: str | None) -> str | None:
    """The format a key's extension names (`a/photo.jpg` -> jpeg), None if it names none."""
    return FORMAT_OF_EXTENSION.get(extension(key or ""))


def choice_problem(
    output: str | None,
    format: str | None,
    quality: int | str,
    accept: list[OutputFormat] | None,
    ssim: float | None,
) -> tuple[str, str] | None:
    """(message, field) of output fields that contradict each other, or None: `accept` is
    format auto's, `ssim` is an auto's target, and an output key with a format's extension
    keeps `auto` to that format."""
    if accept is not None and format != "auto":
        return 'give `accept` only with `"format": "auto"`', "accept"
    if ssim is not None and "auto" not in (format, quality):
        return 'give `ssim` only with `"format": "auto"` or `"quality": "auto"`', "ssim"
    named = extension_format(output)
    if format == "auto" and named is not None and accept is not None and named not in accept:
        return f"the output key names {named}, which `accept` leaves out", "accept"
    return None


def input_key_of(source: InputSource) -> str | None:
    """The object key an input source names, or None for inline bytes."""
    if isinstance(source, str):
        return source
    return source.input_key
