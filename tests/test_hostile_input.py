"""Hostile images: every mutation ends in a documented code; bombs are refused from the
header (decoding first would try to allocate gigabytes)."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imagefleet.settings import load_settings
from jobs.errors import ErrorCode, FleetError
from jobs.geometry import ResizeJob
from tests.fleet_harness import Fleet, process_table, wait_for_job
from worker import codec
from worker.ops.resize import resize

DOCUMENTED = {ErrorCode.IMAGE_PARSE_FAILED, ErrorCode.IMAGE_TOO_LARGE, ErrorCode.PAGE_OUT_OF_RANGE}
LIMITS = codec.Limits(max_megapixels=50, max_frames=100)
CFG = load_settings()  # the handlers' third argument


def _samples() -> dict[str, bytes]:
    base = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 60, 3), np.uint8))
    out = {}
    for fmt in ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP", "AVIF"):
        buffer = io.BytesIO()
        base.save(buffer, fmt)
        out[fmt] = buffer.getvalue()
    buffer = io.BytesIO()
    base.save(buffer, "GIF", save_all=True, append_images=[base.rotate(90)] * 3, duration=50)
    out["GIF-animated"] = buffer.getvalue()
    return out


SAMPLES = _samples()


def _mutations(data: bytes, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    found = []
    for index in range(count):
        mutated = bytearray(data)
        if index % 3 == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                spot = rng.randrange(len(mutated))
                mutated[spot] ^= 1 << rng.randrange(8)
        elif index % 3 == 1:  # truncation
            mutated = mutated[: rng.randrange(1, len(mutated))]
        else:  # garbage over the header
            spot = rng.randrange(min(64, len(mutated)))
            mutated[spot : spot + 4] = rng.randbytes(4)
        found.append(bytes(mutated))
    return found


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutated_images_end_in_documented_codes(name: str) -> None:
    outcomes = {"decoded": 0, "refused": 0}
    for data in _mutations(SAMPLES[name], 150, seed=len(name)):
        try:
            picture = codec.decode(data, LIMITS, animated=True)
            resize([picture], ResizeJob(input="x", width=17, fit="fill"), CFG)  # and it operates
            outcomes["decoded"] += 1
        except FleetError as exc:
            assert exc.code in DOCUMENTED, (exc.code, exc.message)
            outcomes["refused"] += 1
    assert sum(outcomes.values()) == 150


def _png(width: int, height: int, extra_chunks: bytes = b"") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + extra_chunks
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _patched(fmt: str, offset_of: bytes, delta: int, value: bytes) -> bytes:
    data = bytearray(SAMPLES[fmt])
    at = data.index(offset_of) + delta
    data[at : at + len(value)] = value
    return bytes(data)


def _tiff(width: int, height: int) -> bytes:
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (278, 4, 1, 1),
        (279, 4, 1, 16),
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, kind, count, value) for tag, kind, count, value in entries
    )
    return b"II*\0" + struct.pack("<I", 24) + b"\0" * 16 + ifd + b"\0\0\0\0"


def _bmp(width: int, height: int) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + header + b"\0" * 16


BOMBS = {
    "png 100000x100000": _png(100_000, 100_000),
    "jpeg 65535x65535": _patched("JPEG", b"\xff\xc0", 5, b"\xff\xff\xff\xff"),
    "gif 65535x65535": _patched("GIF", b"GIF8", 6, b"\xff\xff\xff\xff"),
    "tiff 100000x100000": _tiff(100_000, 100_000),
    "bmp 100000x100000": _bmp(100_000, 100_000),
    "webp 16383x16383": _patched("WEBP", b"VP8 ", 14, b"\xff\x3f\xff\x3f"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_decompression_bombs_are_refused_from_the_header(name: str) -> None:
    with pytest.raises(FleetError) as caught:
        codec.decode(BOMBS[name], LIMITS)
    # Refused before any pixel is decoded: a decode would allocate gigabytes first.
    assert caught.value.code in (ErrorCode.IMAGE_TOO_LARGE, ErrorCode.IMAGE_PARSE_FAILED)
    if not name.startswith("webp"):  # libwebp itself rejects the forged canvas
        assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE, caught.value.message


def test_frame_count_bombs_are_refused() -> None:
    frames = [Image.new("RGB", (2, 2), (i % 250, (i * 7) % 250, 0)) for i in range(150)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=10)
    with pytest.raises(FleetError) as caught:
        codec.decode(buffer.getvalue(), LIMITS, animated=True)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE and "150 frame" in caught.value.message
    assert codec.decode(buffer.getvalue(), LIMITS).first.shape == (2, 2, 3)  # one frame: fine


def test_png_text_chunk_flood_ends_cleanly() -> None:
    def text(i: int) -> bytes:
        body = b"k%d\0" % i + b"v" * 400
        return (
            struct.pack(">I", len(body))
            + b"tEXt"
            + body
            + struct.pack(">I", zlib.crc32(b"tEXt" + body))
        )

    flood = _png(8, 8, b"".join(text(i) for i in range(200_000)))  # ~80 MB of text chunks
    try:
        codec.decode(flood, LIMITS)
    except FleetError as exc:
        assert exc.code in DOCUMENTED


def test_mutated_images_through_the_fleet_end_and_no_worker_dies(dir_fleet: Fleet) -> None:
    """The same mutations as jobs on the real cpu pool: each job ends, succeeded or with a
    documented code, and the pool's processes are the ones that were there before."""

    def pool() -> set[int]:
        table = process_table()
        workers = {
            pid
            for pid, (ppid, args) in table.items()
            if ppid == dir_fleet.child.pid and "--pool cpu" in args
        }
        return workers | {pid for pid, (ppid, _) in table.items() if ppid in workers}

    before = pool()
    jobs = []
    with dir_fleet.client() as client:
        for name, data in sorted(SAMPLES.items()):
            for index, mutated in enumerate(_mutations(data, 6, seed=7 + len(name))):
                key = f"hostile/{name}-{index}"
                client.put(f"/v1/objects/{key}", content=mutated).raise_for_status()
                reply = client.post(
                    "/v1/jobs",
                    json={"operation": "resize", "input": key, "width": 17, "animated": True},
                )
                if reply.status_code == 202:
                    jobs.append(reply.json()["id"])
                else:  # refused at submission from its header: a documented code too
                    assert reply.json()["error"]["code"] in {c.value for c in DOCUMENTED}
        ended = [wait_for_job(client, job_id) for job_id in jobs]
    assert len(jobs) > 20
    for job in ended:
        assert job["status"] == "succeeded" or job["error"]["code"] in {
            c.value for c in DOCUMENTED
        }, job
    assert pool() == before
