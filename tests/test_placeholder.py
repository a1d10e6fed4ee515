"""placeholder: BlurHash and ThumbHash checked against independent implementations.

The encoders (worker/placeholders.py) must give the same strings and bytes as the
references' own encoders on the same pixels: `blurhash-python` wraps woltapp's C encoder
and decoder, `fast-thumbhash` wraps evanw's Rust crate. The operation's output is decoded
with those and compared with the picture shrunk by Pillow (BOX) to the decoded size.
BlurHash is crude by design: its reference normalises every AC term by 2 (a diagonal
pattern comes back at half contrast) and its basis has no half-pixel offset (a flat image
decodes with a slight bump in the top-left corner); the bounds below allow for that.
"""

from __future__ import annotations

import base64
import io
import json
import secrets

import blurhash as reference_blurhash
import cv2
import fast_thumbhash
import msgspec
import numpy as np
import pytest
import redis
from PIL import Image, ImageCms, ImageOps

from billing.accounts import Accounts
from imagefleet.settings import load_settings
from jobs.analysis import Components, PlaceholderJob
from jobs.prices import Flat
from jobs.registry import OPERATIONS, decode_spec
from tests import images
from tests.fleet_harness import Fleet
from worker import codec
from worker.ops.placeholder import placeholder
from worker.placeholders import blurhash, thumbhash

# blurhash-python reads pixels with Pillow's getdata (deprecated in Pillow 13).
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")
CFG = load_settings()
LIMITS = codec.Limits()
QUADRANTS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (240, 220, 30)]


def run(data: bytes, **fields: object) -> dict[str, str]:
    """Decode as the runner does (shrink-on-load by the spec's scale), then the handler."""
    spec = PlaceholderJob(input="in", **fields)  # type: ignore[arg-type]
    picture = codec.decode(data, LIMITS, scale_for=spec.decode_scale)
    output = placeholder([picture], spec, CFG)
    assert output.picture is None and set(output.fields) == {"blurhash", "thumbhash"}
    json.dumps(output.fields)  # plain JSON
    return output.fields


def blurhash_pixels(text: str, width: int, height: int) -> np.ndarray:
    """The reference C decoder's RGB, as float."""
    return np.asarray(reference_blurhash.decode(text, width, height), np.float64)


def thumbhash_pixels(text: str) -> np.ndarray:
    """The reference Rust decoder's RGBA (its own size, ~32 px on the long side)."""
    width, height, rgba = fast_thumbhash.thumb_hash_to_rgba(base64.b64decode(text))
    return np.frombuffer(bytes(rgba), np.uint8).reshape(height, width, 4).astype(np.float64)


def shrunk(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """The picture at the decoded size, by Pillow's box filter (not our code path)."""
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.BOX)
    return np.asarray(image, np.float64)


def mae(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute error per channel."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return np.abs(a - b).mean(axis=(0, 1))


def smooth_noise(width: int, height: int, channels: int, seed: int) -> np.ndarray:
    """Random colour fields, smooth: generic content with no exactly-zero DCT term (a
    zero term is a tie the references themselves break by float noise)."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, channels), dtype=np.uint8)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def quadrants(width: int = 400, height: int = 300) -> np.ndarray:
    pixels = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    pixels[:h, :w], pixels[:h, w:], pixels[h:, :w], pixels[h:, w:] = QUADRANTS
    return pixels


def smooth_scene(width: int = 400, height: int = 300) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = [40 + 180 * xs / width, 200 - 150 * ys / height, 60 + 100 * (xs + ys) / (width + height)]
    return np.stack(rgb, axis=-1).astype(np.uint8)


# --- the declaration ----------------------------------------------------------------------


def test_registry_handler_and_flat_price_like_dominant_color() -> None:
    op = OPERATIONS["placeholder"]
    assert op.load_handler() is placeholder
    assert isinstance(op.billing, Flat) and op.billing == OPERATIONS["dominant-color"].billing
    assert not op.pipeline_step


def test_components_default_to_4x3_and_take_1_to_9() -> None:
    spec = decode_spec(b'{"operation": "placeholder", "input": "a.png"}')
    assert isinstance(spec, PlaceholderJob) and spec.components == Components(4, 3)
    body = b'{"operation": "placeholder", "input": "a.png", "components": {"x": 9, "y": 1}}'
    spec = decode_spec(body)
    assert isinstance(spec, PlaceholderJob) and spec.components == Components(9, 1)
    for bad in ('{"x": 0}', '{"y": 10}', '{"x": 2, "z": 3}'):
        with pytest.raises(msgspec.ValidationError, match=r"\$\.components"):
            decode_spec(
                f'{{"operation":"placeholder","input":"a.png","components":{bad}}}'.encode()
            )


@pytest.mark.parametrize(
    ("field", "value"),
    [("output", "o.png"), ("format", "png"), ("quality", 80), ("inline", True), ("animated", True)],
)
def test_output_fields_are_refused(field: str, value: object) -> None:
    body = {"operation": "placeholder", "input": "a.png", field: value}
    with pytest.raises(msgspec.ValidationError, match=f"unknown field `{field}`"):
        decode_spec(json.dumps(body).encode())


def test_decode_scale_asks_for_at_least_100_px() -> None:
    spec = PlaceholderJob(input="a.jpg")
    assert spec.decode_scale(4000, 3000) == pytest.approx(0.025)
    assert spec.decode_scale(80, 60) == 1.0


# --- the encoders against the references' encoders ----------------------------------------


@pytest.mark.parametrize("size", [(100, 75), (64, 64), (37, 100), (100, 9), (8, 8)])
@pytest.mark.parametrize("components", [(1, 1), (4, 3), (3, 7), (9, 9), (9, 1)])
def test_blurhash_equals_the_reference_c_encoder(
    size: tuple[int, int], components: tuple[int, int]
) -> None:
    for seed in range(3):
        rgb = smooth_noise(*size, 3, seed)
        want = reference_blurhash.encode(Image.fromarray(rgb), *components)
        assert blurhash(rgb, *components) == want


@pytest.mark.parametrize("size", [(100, 75), (64, 64), (37, 100), (100, 9), (8, 8), (1, 1)])
def test_blurhash_of_photo_like_pixels_equals_the_reference(size: tuple[int, int]) -> None:
    rgb = images.photo_like(max(size[0], 8), max(size[1], 8))[: size[1], : size[0]].copy()
    assert blurhash(rgb) == reference_blurhash.encode(Image.fromarray(rgb), 4, 3)


def test_blurhash_refuses_components_out_of_range() -> None:
    with pytest.raises(ValueError, match="1 to 9"):
        blurhash(np.zeros((4, 4, 3), np.uint8), 10, 3)


@pytest.mark.parametrize("size", [(100, 75), (64, 64), (37, 100), (100, 9), (8, 8), (55, 23)])
@pytest.mark.parametrize("alpha", ["opaque", "varying", "half"])
def test_thumbhash_equals_the_reference_rust_encoder(size: tuple[int, int], alpha: str) -> None:
    width, height = size
    for seed in range(3):
        rgba = smooth_noise(width, height, 4, seed)
        if alpha == "opaque":
            rgba[:, :, 3] = 255
        elif alpha == "half":
            rgba[:, : width // 2, 3] = 0
        want = bytes(fast_thumbhash.rgba_to_thumb_hash(width, height, rgba.tobytes()))
        assert thumbhash(rgba) == want, (seed, thumbhash(rgba).hex(), want.hex())


def test_thumbhash_refuses_more_than_100_px() -> None:
    with pytest.raises(ValueError, match="100x100"):
        thumbhash(np.zeros((50, 101, 4), np.uint8))


# --- the operation, decoded by the references ---------------------------------------------


@pytest.mark.parametrize("scene", ["smooth", "photo"])
def test_decoded_placeholders_look_like_the_picture(scene: str) -> None:
    pixels = smooth_scene() if scene == "smooth" else images.photo_like(400, 300)
    fields = run(images.encode(pixels))
    # Bounds: measured ~(3, 7, 4) / (10, 11, 7) smooth, ~(16, 14, 22) / (17, 18, 22) photo;
    # the picture turned 180 degrees is 60-100 off in red and green.
    bound_blur, bound_thumb = (10, 15) if scene == "smooth" else (25, 28)
    decoded = blurhash_pixels(fields["blurhash"], 40, 30)
    assert (mae(decoded, shrunk(pixels, 40, 30)) <= bound_blur).all()
    assert (mae(decoded, shrunk(pixels[::-1, ::-1], 40, 30))[:2] > 50).all()
    thumb = thumbhash_pixels(fields["thumbhash"])
    th, tw = thumb.shape[:2]
    assert tw == 32 and 22 <= th <= 25  # landscape ~4:3 (the aspect is stored roughly)
    assert (mae(thumb[:, :, :3], shrunk(pixels, tw, th)) <= bound_thumb).all()
    assert (mae(thumb[:, :, :3], shrunk(pixels[::-1, ::-1], tw, th))[:2] > 50).all()
    assert (thumb[:, :, 3] == 255).all()


def _quadrant_means(decoded: np.ndarray) -> list[np.ndarray]:
    h, w = decoded.shape[0] // 2, decoded.shape[1] // 2
    parts = [decoded[:h, :w], decoded[:h, w:], decoded[h:, :w], decoded[h:, w:]]
    return [part[:, :, :3].mean(axis=(0, 1)) for part in parts]


def test_four_quadrants_come_back_each_nearest_its_own_colour() -> None:
    """4x3 terms blur the edges and halve the diagonal contrast, so each quadrant's mean is
    only roughly its colour: nearer its own than any other quadrant's, and the whole
    nearer the picture than the picture flipped either way."""
    pixels = quadrants()
    fields = run(images.encode(pixels))
    for decoded in (
        blurhash_pixels(fields["blurhash"], 40, 30),
        thumbhash_pixels(fields["thumbhash"]),
    ):
        for index, mean in enumerate(_quadrant_means(decoded)):
            distances = [np.abs(mean - colour).sum() for colour in QUADRANTS]
            assert int(np.argmin(distances)) == index, (index, mean)
        h, w = decoded.shape[:2]
        rgb = decoded[:, :, :3]
        right = mae(rgb, shrunk(pixels, w, h))
        assert (right < mae(rgb, shrunk(pixels[::-1], w, h))).all()
        assert (right < mae(rgb, shrunk(pixels[:, ::-1], w, h))).all()


@pytest.mark.parametrize("split", ["top-bottom", "left-right"])
def test_two_halves_come_back_with_their_colours(split: str) -> None:
    """A split along one axis needs no diagonal terms: each half's colour comes back."""
    pixels = np.zeros((300, 400, 3), np.uint8)
    first, second = (210, 60, 50), (40, 90, 200)
    if split == "top-bottom":
        pixels[:150], pixels[150:] = first, second
    else:
        pixels[:, :200], pixels[:, 200:] = first, second
    fields = run(images.encode(pixels))
    for decoded, bound in (
        (blurhash_pixels(fields["blurhash"], 40, 30), 30),  # measured <= 26 (dark channels)
        (thumbhash_pixels(fields["thumbhash"])[:, :, :3], 15),  # measured <= 7
    ):
        h, w = decoded.shape[0] // 2, decoded.shape[1] // 2
        a, b = (
            (decoded[:h], decoded[h:])
            if split == "top-bottom"
            else (decoded[:, :w], decoded[:, w:])
        )
        assert np.abs(a.mean(axis=(0, 1)) - first).max() <= bound
        assert np.abs(b.mean(axis=(0, 1)) - second).max() <= bound


@pytest.mark.parametrize("size", [(300, 200), (50, 50), (1, 1), (3, 200)])
def test_a_solid_colour_comes_back(size: tuple[int, int]) -> None:
    colour = (173, 64, 25)
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[...] = colour
    fields = run(images.encode(pixels))
    decoded = blurhash_pixels(fields["blurhash"], 30, 20)
    assert np.abs(decoded.mean(axis=(0, 1)) - colour).max() <= 1.5
    assert np.abs(decoded - colour).max() <= 12  # the reference basis's corner bump
    thumb = thumbhash_pixels(fields["thumbhash"])
    assert np.abs(thumb[:, :, :3] - colour).max() <= 3
    assert (thumb[:, :, 3] == 255).all()
    r, g, b, a = fast_thumbhash.thumb_hash_to_average_rgba(base64.b64decode(fields["thumbhash"]))
    assert np.abs(np.array([r, g, b]) * 255 - colour).max() <= 3 and a == 1.0


@pytest.mark.parametrize("size", [(400, 6), (6, 400), (5, 3), (2, 1)])
def test_tiny_and_thin_images_keep_their_halves(size: tuple[int, int]) -> None:
    """Fewer pixels than terms would alias (a 1-px side decodes as stripes): the working
    copy repeats pixels first. The halves along the long side keep their colours."""
    width, height = size
    first, second = (200, 40, 40), (40, 60, 200)
    pixels = np.zeros((height, width, 3), np.uint8)
    if width >= height:
        pixels[:, : width // 2], pixels[:, width // 2 :] = first, second
    else:
        pixels[: height // 2], pixels[height // 2 :] = first, second
    fields = run(images.encode(pixels))
    thumb = thumbhash_pixels(fields["thumbhash"])[:, :, :3]
    assert (thumb.shape[1] > thumb.shape[0]) == (width > height)
    # 45: ThumbHash's decoder boosts chroma 1.25x, so a hard edge overshoots (measured
    # <= 36); unrepeated, the 2x1 image came back 60 off, the 1x1 one 230 off.
    for decoded in (thumb, blurhash_pixels(fields["blurhash"], 40, 40)):
        if width >= height:
            a, b = decoded[:, : decoded.shape[1] // 4], decoded[:, -decoded.shape[1] // 4 :]
        else:
            a, b = decoded[: decoded.shape[0] // 4], decoded[-decoded.shape[0] // 4 :]
        assert np.abs(a.mean(axis=(0, 1)) - first).max() <= 45, a.mean(axis=(0, 1))
        assert np.abs(b.mean(axis=(0, 1)) - second).max() <= 45, b.mean(axis=(0, 1))


@pytest.mark.parametrize("components", [(1, 1), (4, 3), (9, 2), (2, 9)])
def test_components_shape_the_blurhash(components: tuple[int, int]) -> None:
    x, y = components
    fields = run(images.encode(images.photo_like(200, 150)), components=Components(x, y))
    text = fields["blurhash"]
    assert len(text) == 4 + 2 * x * y
    assert reference_blurhash.decode(text, 8, 6).size == (8, 6)  # the reference accepts it


def test_more_components_resolve_finer_stripes() -> None:
    pixels = np.zeros((120, 400, 3), np.uint8)
    for band in range(8):  # eight vertical stripes, alternating
        pixels[:, band * 50 : (band + 1) * 50] = (230, 200, 60) if band % 2 else (40, 70, 160)
    errors = {}
    for x in (1, 4, 9):
        text = run(images.encode(pixels), components=Components(x, 1))["blurhash"]
        errors[x] = mae(blurhash_pixels(text, 80, 24), shrunk(pixels, 80, 24)).mean()
    assert errors[9] < errors[4] - 20 and errors[9] < errors[1] - 20, errors


# --- alpha --------------------------------------------------------------------------------


def test_thumbhash_of_a_half_transparent_image_decodes_with_alpha() -> None:
    """Left half opaque red, right half fully transparent (over green that must not show)."""
    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[:, :150] = (220, 40, 40, 255)
    rgba[:, 150:] = (0, 255, 0, 0)
    fields = run(images.encode(rgba))
    thumb = thumbhash_pixels(fields["thumbhash"])
    w = thumb.shape[1]
    assert thumb[:, : w // 3, 3].mean() >= 230 and thumb[:, -w // 3 :, 3].mean() <= 25
    assert np.abs(thumb[:, : w // 3, :3].mean(axis=(0, 1)) - (220, 40, 40)).max() <= 20
    # BlurHash has no alpha: transparent parts are the visible colour, never the green.
    decoded = blurhash_pixels(fields["blurhash"], 30, 20)
    assert np.abs(decoded - (220, 40, 40)).max() <= 16


def test_a_uniformly_half_transparent_image_keeps_its_alpha() -> None:
    rgba = np.zeros((120, 160, 4), np.uint8)
    rgba[...] = (30, 90, 200, 128)
    fields = run(images.encode(rgba))
    thumb = thumbhash_pixels(fields["thumbhash"])
    assert np.abs(thumb[:, :, 3] - 128).max() <= 9  # alpha in 4 bits: steps of 17
    assert np.abs(thumb[:, :, :3] - (30, 90, 200)).max() <= 4
    decoded = blurhash_pixels(fields["blurhash"], 16, 12)
    assert np.abs(decoded.mean(axis=(0, 1)) - (30, 90, 200)).max() <= 1.5


def test_a_fully_transparent_image_has_placeholders_too() -> None:
    fields = run(images.encode(np.zeros((40, 40, 4), np.uint8)))
    assert (thumbhash_pixels(fields["thumbhash"])[:, :, 3] == 0).all()
    assert (blurhash_pixels(fields["blurhash"], 8, 8) == 0).all()  # black: no colour seen


# --- orientation, shrink-on-load, 16 bits -------------------------------------------------


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_rotated_jpeg_gives_the_upright_placeholder(orientation: int) -> None:
    stored = images.photo_like(360, 240, seed=5)
    upright = images.upright(stored, orientation)
    fields = run(images.encode(stored, "JPEG", orientation=orientation, quality=95))
    height, width = upright.shape[:2]
    thumb = thumbhash_pixels(fields["thumbhash"])
    assert (thumb.shape[1] > thumb.shape[0]) == (width > height)
    tw, th = thumb.shape[1], thumb.shape[0]
    assert (mae(thumb[:, :, :3], shrunk(upright, tw, th)) <= 28).all()
    bw, bh = (40, 27) if width > height else (27, 40)
    decoded = blurhash_pixels(fields["blurhash"], bw, bh)
    assert (mae(decoded, shrunk(upright, bw, bh)) <= 25).all()
    # The same picture upright as a PNG: the same placeholders, give or take JPEG's loss.
    plain = run(images.encode(upright))
    assert mae(blurhash_pixels(plain["blurhash"], bw, bh), decoded).max() <= 4
    if orientation == 3:  # the same shape: the stored pixels, not turned, are far off
        assert mae(decoded, shrunk(stored, bw, bh)).mean() > 30


def test_shrink_on_load_gives_nearly_the_full_decode_placeholders() -> None:
    pixels = images.photo_like(1600, 1200, seed=2)
    data = images.encode(pixels, "JPEG", quality=92)
    spec = PlaceholderJob(input="in")
    small = codec.decode(data, LIMITS, scale_for=spec.decode_scale)
    assert (small.width, small.height) == (200, 150)  # 1/8: still >= 100 px
    full = codec.decode(data, LIMITS)
    quick = placeholder([small], spec, CFG).fields
    slow = placeholder([full], spec, CFG).fields
    a, b = (blurhash_pixels(f["blurhash"], 40, 30) for f in (quick, slow))
    assert mae(a, b).max() <= 3
    ta, tb = (thumbhash_pixels(f["thumbhash"]) for f in (quick, slow))
    assert mae(ta, tb).max() <= 3


def test_16_bit_png_matches_its_8_bit_version() -> None:
    wide = images.photo_like(200, 150, seed=4).astype(np.uint16) * 257 + 100
    ok, png16 = cv2.imencode(".png", cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    assert ok
    deep = run(png16.tobytes())
    eight = run(images.encode(np.rint(wide / 257).astype(np.uint8)))
    assert (
        mae(
            blurhash_pixels(deep["blurhash"], 20, 15), blurhash_pixels(eight["blurhash"], 20, 15)
        ).max()
        <= 6
    )  # the 8-bit copy rounds before the shrink: quantisation steps move
    assert mae(thumbhash_pixels(deep["thumbhash"]), thumbhash_pixels(eight["thumbhash"])).max() <= 6
    picture = np.rint(wide / 257).astype(np.uint8)
    assert (mae(blurhash_pixels(deep["blurhash"], 40, 30), shrunk(picture, 40, 30)) <= 25).all()


# --- the corpus (skipped without ../shared) -----------------------------------------------

needs_corpus = pytest.mark.skipif(
    not (images.CORPUS / "Landscape_1.jpg").exists(), reason="shared corpus absent"
)


def _reference_pipeline(name: str) -> tuple[str, bytes]:
    """The packages' own way from a file: Pillow upright and thumbnailed to 100x100, then
    the reference encoders."""
    stored = Image.open(images.CORPUS / name)
    icc = stored.info.get("icc_profile")
    image = ImageOps.exif_transpose(stored)
    if icc:  # Landscape_3 and _6: Generic RGB (gamma 1.8), not sRGB
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"))
        assert converted is not None
        image = converted
    image = image.convert("RGB")
    image.thumbnail((100, 100))
    rgba = image.convert("RGBA")
    thumb = bytes(fast_thumbhash.rgba_to_thumb_hash(rgba.width, rgba.height, rgba.tobytes()))
    return reference_blurhash.encode(image, 4, 3), thumb


@needs_corpus
@pytest.mark.parametrize("name", ["Landscape_1.jpg", "Landscape_3.jpg", "Landscape_6.jpg"])
def test_corpus_orientations_agree_with_the_reference_pipeline(name: str) -> None:
    """Measured: BlurHash within 1.5 (7.5 where one AC term sits a quantisation step
    apart), ThumbHash within 4; each stored orientation within 7 of the upright file's."""
    fields = run((images.CORPUS / name).read_bytes())
    text, thumb = _reference_pipeline(name)
    ours = blurhash_pixels(fields["blurhash"], 40, 30)
    assert mae(ours, blurhash_pixels(text, 40, 30)).max() <= 10
    ours_thumb = thumbhash_pixels(fields["thumbhash"])
    assert ours_thumb.shape[1] == 32 and ours_thumb.shape[0] < 32  # landscape, upright
    assert mae(ours_thumb, thumbhash_pixels(base64.b64encode(thumb).decode())).max() <= 6
    upright = run((images.CORPUS / "Landscape_1.jpg").read_bytes())
    assert mae(ours, blurhash_pixels(upright["blurhash"], 40, 30)).max() <= 10
    assert mae(ours_thumb, thumbhash_pixels(upright["thumbhash"])).max() <= 8


@needs_corpus
def test_corpus_portrait_is_portrait() -> None:
    thumb = thumbhash_pixels(run((images.CORPUS / "Portrait_6.jpg").read_bytes())["thumbhash"])
    assert thumb.shape[0] > thumb.shape[1]


# --- through the fleet ------------------------------------------------------------------------


def test_placeholder_through_the_fleet_is_charged_the_flat_price(dir_fleet: Fleet) -> None:
    price = OPERATIONS["placeholder"].billing.micros
    accounts = Accounts(redis.Redis.from_url(dir_fleet.redis_url))
    name = f"t{secrets.token_hex(5)}"
    _, key = accounts.create(name, 10_000, rate_limit=0)
    pixels = images.photo_like(2000, 1500, seed=7)  # 3 MP: 900 micros if it were metered
    with dir_fleet.client(key) as client:
        data = images.encode(pixels, "JPEG", quality=90)
        client.put("/v1/objects/ph.jpg", content=data).raise_for_status()
        job = client.post(
            "/v1/jobs?wait=60", json={"operation": "placeholder", "input": "ph.jpg"}
        ).json()
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert "output" not in result and {"blurhash", "thumbhash"} <= set(result)
    assert job["billing"]["charged_micros"] == job["billing"]["quoted_micros"] == price == 200
    assert job["billing"]["state"] == "captured"
    assert accounts.require(name).balance_micros == 10_000 - price
    decoded = blurhash_pixels(result["blurhash"], 40, 30)
    assert (mae(decoded, shrunk(pixels, 40, 30)) <= 25).all()
    thumb = thumbhash_pixels(result["thumbhash"])
    th, tw = thumb.shape[:2]
    assert (mae(thumb[:, :, :3], shrunk(pixels, tw, th)) <= 28).all()
