"""billing.header on bytes that are not what they claim: never an exception, never a wrong
size, never a read past the end; storage failures propagate."""

from __future__ import annotations

import random
import struct

import pytest

from billing.header import Header, Read, header_of_bytes, read_header
from tests.header_helpers import GENERATED, Counting, generated_samples


@pytest.fixture(scope="module")
def generated() -> dict[str, bytes]:
    return generated_samples()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG",
        b"GIF89a",
        b"\xff\xd8\xff",
        b"BM",
        b"RIFF",
        b"II*\x00",
        b"hello, this is plain text and not an image at all\n" * 20,
        bytes(range(256)) * 4,
        bytes(4096),
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64),  # MP4, not AVIF
    ],
)
def test_not_an_image(data: bytes) -> None:
    assert header_of_bytes(data) is None
    assert header_of_bytes(data, count_frames=True) is None


def test_random_bytes() -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 2000))
        header_of_bytes(data, count_frames=True)  # may be None or not; must not raise


@pytest.mark.parametrize("name", GENERATED)
def test_truncated_headers(generated: dict[str, bytes], name: str) -> None:
    if name not in generated:
        pytest.skip("generator unavailable")
    data, whole = generated[name], header_of_bytes(generated[name])
    # 30 bytes already hold a whole WebP first-chunk header or a 12-byte BMP core header.
    fits_in_30 = name.startswith("webp") or name == "bmp-core-header"
    for cut in (10, 20, 30):
        got = header_of_bytes(data[:cut])
        if cut == 30 and fits_in_30:
            assert got == whole
        else:
            assert got is None, (cut, got)
    for cut in range(0, min(len(data), 400)):  # never a wrong answer from any prefix
        got = header_of_bytes(data[:cut])
        assert got is None or got == whole, (cut, got)
        assert read_header(Counting(data[:cut]), cut) == got  # and no read past the end


def test_fuzzed_headers_never_raise(generated: dict[str, bytes]) -> None:
    rng = random.Random(2024)
    names = sorted(generated)
    for i in range(500):
        data = bytearray(generated[names[i % len(names)]][:3000])
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(min(len(data), 200 if rng.random() < 0.8 else len(data)))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        for count in (False, True):
            got = header_of_bytes(bytes(data), count_frames=count)
            assert got is None or (got.width > 0 and got.height > 0 and got.frames >= 1)
        read_header(Counting(bytes(data)), len(data), count_frames=True, budget=2048)
        read_header(Counting(bytes(data), strict=False), None, count_frames=True, budget=2048)


def test_tiff_ifd_loop_terminates() -> None:
    entries = struct.pack("<HHII", 256, 3, 1, 9) + struct.pack("<HHII", 257, 3, 1, 8)
    ifd = struct.pack("<H", 2) + entries
    data = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 8)  # next IFD: itself
    assert header_of_bytes(data, count_frames=True) == Header("tiff", 9, 8, 1)


def test_read_errors_propagate() -> None:
    def broken(off: int, n: int) -> bytes:
        raise ConnectionError("storage down")

    reader: Read = broken
    with pytest.raises(ConnectionError):
        read_header(reader)
