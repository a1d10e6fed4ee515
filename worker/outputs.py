"""A job's output pictures: each encoded with its options (format, quality, either `auto`),
then all written at the end, or none.

One function encodes an output, `encode_output`, for a job's single output and for each
of a `variants` job's; `write_outputs` writes them after the job's last cancel checkpoint
and deletes what it wrote if a write fails, so a job leaves all its outputs or none.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from jobs.errors import ErrorCode, FleetError
from jobs.spec import DEFAULT_QUALITY, DEFAULT_SSIM, extension_format, rgba_of
from storage import KeyConflict, ObjectStore, tenant_key
from worker import codec, quality
from worker.formats import ensure_plugins
from worker.ops import OpOutput
from worker.picture import Frame, Picture, max_value

if TYPE_CHECKING:
    from imagefleet.settings import Settings

AUTO_FORMATS = ("avif", "webp", "jpeg", "png", "jxl")  # what `format: auto` tries, in order


@dataclass(frozen=True)
class Request:
    """How to encode one output picture, and under which key."""

    key: str | None  # None: jobs/<id>/output.<ext>
    format: str | None  # None: the picture's own; "auto": chosen
    quality: int | str  # "auto": searched
    accept: tuple[str, ...] | None = None
    ssim: float | None = None
    background: tuple[int, int, int] = (255, 255, 255)

    @classmethod
    def of(cls, spec: Any, quality: int | str | None = None) -> Request:
        """The request a spec's output fields make (a TransformJob's or a variant's);
        `quality`: what the operation set (a pipeline's convert or compress step)."""
        stated = getattr(spec, "quality", DEFAULT_QUALITY)
        chosen = quality or stated  # a step's stated quality wins, as in a pipeline
        if getattr(spec, "format", None) == "auto" and stated is None:
            chosen = "auto"  # convert's `format: auto` with no quality: both chosen
        accept = getattr(spec, "accept", None)
        return cls(
            key=spec.output,
            format=getattr(spec, "format", None),
            quality=chosen or DEFAULT_QUALITY,
            accept=tuple(accept) if accept else None,
            ssim=getattr(spec, "ssim", None),
            background=rgba_of(getattr(spec, "background", None), (255, 255, 255, 255))[:3],
        )


@dataclass
class Encoded:
    key: str
    format: str
    payload: bytes
    width: int
    height: int
    frames: int
    quality: int | None = None  # the quality chosen, when it was `auto`
    ssim: float | None = None  # measured against the picture, when format or quality was auto
    fields: dict[str, Any] = field(default_factory=dict)  # more of the result (a variant's)


@dataclass
class Encodings(OpOutput):
    """An operation's output of several pictures, encoded already (variants)."""

    encoded: list[Encoded] = field(default_factory=list)


def encode_output(picture: Picture, request: Request, cfg: Settings, default_stem: str) -> Encoded:
    """`picture` encoded as `request` says; its key gets the format's extension if none."""
    fmt = request.format or picture.format
    if fmt != "auto" and fmt not in codec.CONTENT_TYPES:
        fmt = "png"  # a format read but not written (bmp, heif, svg, ...)
    if fmt == "auto" or request.quality == "auto":
        encoded = _choose(picture, fmt, request, cfg)
    else:
        assert isinstance(request.quality, int)
        payload = _encode(picture, fmt, request.quality, request, cfg, palette=False)
        encoded = Encoded("", fmt, payload, picture.width, picture.height, 1)
    encoded.frames = len(picture.frames) if _animates(encoded.format, picture) else 1
    encoded.key = _key(request.key, default_stem, encoded.format, fmt == "auto")
    return encoded


def _key(key: str | None, stem: str, fmt: str, auto: bool) -> str:
    ext = codec.extension(fmt)
    if key is None:
        return f"{stem}.{ext}"
    if auto and extension_format(key) is None:
        return f"{key}.{ext}"  # "photo" -> "photo.avif"
    return key


def _animates(fmt: str, picture: Picture) -> bool:
    return fmt in ("gif", "webp") and len(picture.frames) > 1


def _encode(
    picture: Picture, fmt: str, q: int, request: Request, cfg: Settings, palette: bool = True
) -> bytes:
    """`palette`: an auto choice may write a graphic's PNG indexed (a given `png` stays as
    it always was)."""
    return codec.encode(
        picture, fmt, q, request.background, cfg.avif_speed, cfg.webp_method, palette=palette
    )


def _encoder(picture: Picture, fmt: str, request: Request, cfg: Settings) -> quality.Encoder:
    """Encodes one frame as a still picture of this format (the search's proxies)."""

    def encode(frame: Frame, q: int) -> bytes:
        return _encode(Picture([frame], picture.format), fmt, q, request, cfg)

    return encode


def _decoded(payload: bytes) -> Frame:
    ensure_plugins()
    with Image.open(io.BytesIO(payload)) as image:
        alpha = "A" in image.getbands() or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if alpha else "RGB"))


def _measured(first: Frame, payload: bytes, request: Request) -> float:
    """The SSIM of an encode against the picture: decoded once, read a band at a time."""
    ensure_plugins()
    with Image.open(io.BytesIO(payload)) as image:
        alpha = "A" in image.getbands() or "transparency" in image.info
        mode = "RGBA" if alpha else "RGB"
        image.load()
        if image.size != (first.shape[1], first.shape[0]):
            raise ValueError(f"an encode of {image.size} measured against {first.shape}")
        decoded = image if image.mode == mode else image.convert(mode)

        def rows(top: int, bottom: int) -> Frame:
            return np.asarray(decoded.crop((0, top, decoded.width, bottom)))

        return quality.ssim_frames(first, rows, request.background)


def candidates(picture: Picture, fmt: str, request: Request) -> list[str]:
    """The formats `auto` tries: those accepted (or the key's own), JPEG only for opaque
    pictures, PNG only for graphics (at most 256 colours), WebP only for an animation."""
    if fmt != "auto":
        return [fmt]
    named = extension_format(request.key)
    allowed = [named] if named else list(request.accept or AUTO_FORMATS)
    if len(picture.frames) > 1 and "webp" in allowed:
        return ["webp"]  # the one accepted format that keeps the frames
    first = picture.first
    opaque = max_value(first)
    if first.shape[2] == 4 and bool((first[:, :, 3] < opaque).any()):
        allowed = [f for f in allowed if f != "jpeg"] or ["png"]  # alpha never goes to JPEG
    lossy = [f for f in allowed if f != "png"]
    if "png" in allowed and (not lossy or quality.few_colours(first) is not None):
        lossy.append("png")
    return lossy


def _choose(picture: Picture, fmt: str, request: Request, cfg: Settings) -> Encoded:
    """Each candidate format searched (or encoded at the given quality) on the proxy; the
    smallest's full-size encode measured, its quality raised until it meets the target."""
    target = request.ssim or DEFAULT_SSIM
    first = picture.first
    sample = quality.proxy(first)
    whole = sample is first and len(picture.frames) == 1  # the proxy's encode is the output
    best: tuple[tuple[bool, int], str, quality.Found] | None = None
    for option in candidates(picture, fmt, request):
        encode = _encoder(picture, option, request, cfg)
        if option == "png" or request.quality != "auto":
            q = DEFAULT_QUALITY if option == "png" else int(request.quality)
            payload = encode(sample, q)
            found = quality.Found(q, len(payload), 1.0 if option == "png" else -1.0, payload)
        else:
            found = quality.search(sample, target, encode, _decoded, request.background)
        # A format that meets the target beats one that cannot even at quality 100.
        rank = (request.quality == "auto" and found.ssim < target, found.size)
        if best is None or rank < best[0]:
            best = (rank, option, found)
    assert best is not None
    _, chosen, found = best
    q = found.quality
    payload = found.payload if whole else _encode(picture, chosen, q, request, cfg)
    score = _measured(first, payload, request)
    # The proxy predicted this quality; the whole picture may need more (a bounded few).
    for higher in quality.raised(q) if request.quality == "auto" and chosen != "png" else []:
        if score >= target:
            break
        q, payload = higher, _encode(picture, chosen, higher, request, cfg)
        score = _measured(first, payload, request)
    return Encoded(
        "",
        chosen,
        payload,
        picture.width,
        picture.height,
        1,
        quality=q if request.quality == "auto" and chosen != "png" else None,
        ssim=round(score, 5),
    )


def describe(encoded: Encoded, cfg: Settings) -> dict[str, Any]:
    """The result's fields of one written output."""
    return {
        "output": encoded.key,
        "url": f"{cfg.public_url}/v1/objects/{encoded.key}",
        "format": encoded.format,
        "width": encoded.width,
        "height": encoded.height,
        "bytes": len(encoded.payload),
        **({"frames": encoded.frames} if encoded.frames > 1 else {}),
        **({"quality": encoded.quality} if encoded.quality is not None else {}),
        **({"ssim": encoded.ssim} if encoded.ssim is not None else {}),
        **encoded.fields,
    }


def write_outputs(objects: ObjectStore, tenant: str, outputs: list[Encoded]) -> None:
    """Write every output, or none: one that fails deletes those written before it. A key
    the tenant's own objects made unwritable since admission (it became a folder, or a part
    of it an object) is the job's OUTPUT_CONFLICT, not a crash of ours."""
    written: list[str] = []
    try:
        for encoded in outputs:
            key = tenant_key(tenant, encoded.key)
            try:
                objects.put(key, encoded.payload, codec.CONTENT_TYPES[encoded.format])
            except KeyConflict as exc:
                raise FleetError(ErrorCode.OUTPUT_CONFLICT, _conflict(encoded.key, exc)) from None
            written.append(key)
    except BaseException:
        for key in written:
            objects.delete(key)
        raise


def _conflict(key: str, exc: KeyConflict) -> str:
    inside = exc.conflict.inside
    where = "is now a folder of other objects" if inside is None else "now lies inside an object"
    return f"output {key!r} {where}: a key cannot be both an object and a folder"
