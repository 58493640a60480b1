"""Faces, eyes and mouths with the Haar cascades bundled in OpenCV 4.x (no download), plus the
skin-colour test that tells a face from a face-like pattern."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

CASCADE_FILES = {
    "face": "haarcascade_frontalface_default.xml",
    "eye": "haarcascade_eye.xml",
    "smile": "haarcascade_smile.xml",
}
# the classic YCrCb skin box (Chai and Ngan): wide enough for most skin tones under daylight
SKIN_CR = (133, 173)
SKIN_CB = (77, 127)
SKIN_MIN_Y = 40


@lru_cache(maxsize=None)
def cascade(name: str) -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + CASCADE_FILES[name]
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise RuntimeError(f"OpenCV has no Haar cascade at {path} (the 4.x contrib build ships them)")
    return classifier


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def detect_faces(rgb: np.ndarray, min_fraction: float = 0.06, min_neighbors: int = 6) -> list[list[int]]:
    """Frontal faces as [x, y, w, h], largest first; faces smaller than `min_fraction` of the
    shorter image side are ignored."""
    side = max(16, int(min_fraction * min(rgb.shape[:2])))
    found = cascade("face").detectMultiScale(_grey(rgb), scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(side, side))
    boxes = [[int(v) for v in box] for box in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: (-b[2] * b[3], b[0], b[1]))


def skin_pixels(rgb: np.ndarray) -> np.ndarray:
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    y, cr, cb = ycrcb[..., 0], ycrcb[..., 1], ycrcb[..., 2]
    return (y >= SKIN_MIN_Y) & (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])


def skin_fraction(rgb: np.ndarray, box) -> float:
    """Share of skin-coloured pixels in the middle of a face box (cheeks, nose; no hair)."""
    x, y, w, h = [int(round(v)) for v in box]
    core = rgb[max(0, y + h // 4) : max(0, y + 3 * h // 4), max(0, x + w // 4) : max(0, x + 3 * w // 4)]
    return float(skin_pixels(core).mean()) if core.size else 0.0


def detect_features(rgb: np.ndarray, box) -> dict:
    """Eyes (upper half of the face) and a mouth (lower third), each [x, y, w, h] in image pixels,
    where the cascades find them."""
    x, y, w, h = [int(round(v)) for v in box]
    face = _grey(rgb[max(0, y) : y + h, max(0, x) : x + w])
    if face.size == 0:
        return {"eyes": [], "mouth": None}
    upper = face[: h // 2]
    eye_side = max(8, w // 8)
    eyes = cascade("eye").detectMultiScale(upper, 1.1, 5, minSize=(eye_side, eye_side), maxSize=(w // 2, h // 2)) if upper.size else []
    eyes = sorted(([int(ex) + x, int(ey) + y, int(ew), int(eh)] for ex, ey, ew, eh in eyes), key=lambda b: -b[2] * b[3])[:2]
    lower_top = 2 * h // 3
    lower = face[lower_top:]
    mouths = cascade("smile").detectMultiScale(lower, 1.1, 15, minSize=(max(8, w // 5), max(6, h // 12))) if lower.size else []
    mouth = None
    if len(mouths):
        mx, my, mw, mh = max(mouths, key=lambda b: b[2] * b[3])
        mouth = [int(mx) + x, int(my) + y + lower_top, int(mw), int(mh)]
    return {"eyes": sorted(eyes), "mouth": mouth}


def box_iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0
