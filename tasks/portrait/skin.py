"""The skin a retouch may touch: skin-coloured pixels (YCrCb range) in the face and neck region,
the blob joined to the face, holes filled, eyes and mouth cut out where they were found."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import record_stage, set_blob, work
from pipeline.core.stage import Resources, Row, Stage
from stages.face_haar import skin_pixels


def face_and_neck(box, shape: tuple[int, int]) -> np.ndarray:
    """Where a face's skin can be: an ellipse a little larger than the face box (no hair at its
    corners) and a neck band below it."""
    x, y, w, h = box
    region = np.zeros(shape[:2], np.uint8)
    cx = x + w / 2
    cv2.ellipse(region, (int(round(cx)), int(round(y + 0.5 * h))), (int(round(0.6 * w)), int(round(0.68 * h))), 0, 0, 360, 1, -1)
    top, bottom = int(round(y + 0.8 * h)), int(round(y + 1.45 * h))
    cv2.rectangle(region, (int(round(cx - 0.36 * w)), top), (int(round(cx + 0.36 * w)), bottom), 1, -1)
    return region.astype(bool)


def skin_colour_model(rgb: np.ndarray, box) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and inverse covariance of (Cr, Cb) over the skin-range pixels of the cheeks and nose."""
    x, y, w, h = [int(round(v)) for v in box]
    core = rgb[max(0, y + int(0.4 * h)) : max(0, y + int(0.8 * h)), max(0, x + w // 4) : max(0, x + 3 * w // 4)]
    if core.size == 0:
        return None
    chroma = cv2.cvtColor(core, cv2.COLOR_RGB2YCrCb)[..., 1:].reshape(-1, 2).astype(np.float64)
    chroma = chroma[skin_pixels(core).reshape(-1)]
    if len(chroma) < 20:
        return None
    covariance = np.cov(chroma.T) + np.eye(2) * 4.0  # a floor: a flat-lit face is not one colour
    return chroma.mean(axis=0), np.linalg.inv(covariance)


def skin_mask(rgb: np.ndarray, face: dict, max_distance: float = 3.0) -> np.ndarray:
    """Skin of one face: the skin range, narrowed to this face's own skin colour (blond hair and
    a wooden wall share the range, rarely the exact colour), inside the face and neck region."""
    box = face["bbox"]
    region = face_and_neck(box, rgb.shape) & skin_pixels(rgb)
    model = skin_colour_model(rgb, box)
    if model is not None:
        mean, inverse = model
        chroma = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(np.float64) - mean
        distance = np.einsum("...i,ij,...j->...", chroma, inverse, chroma)
        region &= distance <= max_distance**2
    region = region.astype(np.uint8)
    side = max(3, int(box[2] * 0.03) | 1)
    region = cv2.morphologyEx(region, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * side + 1, 2 * side + 1)))
    region = _joined_to_face(region, box)
    region = _fill_small_holes(region, 0.01 * box[2] * box[3])
    for eye in face.get("eyes") or []:
        _ellipse(region, eye, 0.15)
    if face.get("mouth"):
        _ellipse(region, face["mouth"], 0.1)
    return region.astype(bool)


def _joined_to_face(mask: np.ndarray, box) -> np.ndarray:
    """The skin blobs that reach the middle of the face box (a hand or a wooden wall nearby is left out)."""
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    x, y, w, h = [int(round(v)) for v in box]
    core = labels[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
    keep = [v for v in np.unique(core) if v != 0]
    return np.isin(labels, keep).astype(np.uint8) if keep else np.zeros_like(mask)


def _fill_small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """Fill holes (moles, glints) smaller than `max_area`; eyes and open mouths are larger and stay."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((mask == 0).astype(np.uint8), connectivity=4)
    filled = mask.copy()
    height, width = mask.shape
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        touches_border = x == 0 or y == 0 or x + w == width or y + h == height
        if area < max_area and not touches_border:
            filled[labels == label] = 1
    return filled


def _ellipse(mask: np.ndarray, box, grow: float) -> None:
    x, y, w, h = box
    centre = (int(round(x + w / 2)), int(round(y + h / 2)))
    axes = (max(1, int(round(w * (0.5 + grow)))), max(1, int(round(h * (0.5 + grow)))))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 0, -1)


class PortraitSkinStage(Stage):
    """One skin mask per face, kept as `skin:<i>` scratch; its share of the face box recorded."""

    name = "portrait_skin"
    reads = ("source_image", "work.faces")
    writes = ("blob.skin:*", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks

    def process_row(self, row: Row) -> Row:
        rgb = decode_image(row["source_image"]["bytes"])
        shares = []
        for i, face in enumerate(work(row)["faces"]):
            mask = skin_mask(rgb, face)
            x, y, w, h = face["bbox"]
            shares.append(round(float(mask.sum()) / max(1.0, w * h), 3))
            set_blob(row, f"skin:{i}", encode_image(mask.astype(np.uint8) * 255))
        record_stage(row, self.name, skin_share_of_face_box=shares)
        return row
