"""A bank of cut-out objects to paste into other pictures: objects segmented with GrabCut from the
bundled sample photos, using their annotated boxes.

A streaming row never sees the other inputs of a run, so the replace recipe's cpu path takes its
donors from here; a donor never comes from the row's own picture (same file name or same bytes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath

import cv2
import numpy as np
from PIL import Image

from pipeline.core.annotations import load_coco
from pipeline.core.inputs import SAMPLES_ANNOTATIONS, samples_dir
from stages.grabcut_mask import clean_mask, grabcut_from_box


@dataclass(frozen=True)
class Donor:
    id: str  # "<file>#<annotation index>"
    label: str
    source: str  # the sample's file name
    source_sha256: str
    license: str | None
    rgb: np.ndarray  # the object's bounding crop, uint8 HxWx3
    alpha: np.ndarray  # bool HxW, the object inside the crop

    @property
    def aspect(self) -> float:
        return self.rgb.shape[1] / self.rgb.shape[0]


def _segment(rgb: np.ndarray, box: list[float], iterations: int) -> np.ndarray:
    return clean_mask(grabcut_from_box(rgb, box, iterations, 0.02, seed=0))


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def cut_out(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(mask[y0:y1, x0:x1])


@lru_cache(maxsize=4)
def donor_bank(
    labels: tuple[str, ...],
    max_side: int = 512,
    iterations: int = 5,
    min_mask_fraction: float = 0.15,
    max_box_fraction: float = 0.8,
    annotations: str = str(SAMPLES_ANNOTATIONS),
) -> tuple[Donor, ...]:
    """Every annotated object of `labels` in the sample photos, segmented at most `max_side`
    pixels on the long side. Objects whose box fills most of the photo (GrabCut has no background
    to learn from) and masks that kept little of their box are left out. Cached per process: the
    stages that need it build it once in setup()."""
    wanted = {label.lower() for label in labels}
    index = load_coco(annotations)
    donors: list[Donor] = []
    for name, entry in sorted(index.by_name.items()):
        objects = [(i, o) for i, o in enumerate(entry.objects) if o["label"].lower() in wanted]
        path = samples_dir() / name
        if not objects or not path.exists():
            continue
        data = path.read_bytes()
        with Image.open(path) as img:
            full = np.asarray(img.convert("RGB"))
        scale = min(1.0, max_side / max(full.shape[:2]))
        rgb = _resized(full, scale)
        height, width = rgb.shape[:2]
        for i, obj in objects:
            box = [v * scale for v in obj["bbox"]]
            if box[2] * box[3] > max_box_fraction * width * height:
                continue
            mask = _segment(rgb, box, iterations)
            if mask.sum() < min_mask_fraction * box[2] * box[3] and scale < 1.0:
                # small objects can lose GrabCut at the reduced size: cut at full size, then shrink
                big = _segment(full, obj["bbox"], iterations)
                mask = cv2.resize(big.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
            if mask.sum() < min_mask_fraction * box[2] * box[3]:
                continue
            crop, alpha = cut_out(rgb, mask)
            donors.append(
                Donor(f"{name}#{i}", obj["label"], name, hashlib.sha256(data).hexdigest(), entry.license, crop, alpha)
            )
    return tuple(donors)


def donors_for(bank: tuple[Donor, ...], source_sha256: str | None, source_key: str | None, exclude_label: str) -> list[Donor]:
    """Donors that may go into a row: from another picture, and another kind of object."""
    own_name = PurePosixPath(source_key or "").name
    return [
        d for d in bank
        if d.source_sha256 != source_sha256 and d.source != own_name and d.label.lower() != exclude_label.lower()
    ]


def by_id(bank: tuple[Donor, ...]) -> dict[str, Donor]:
    return {d.id: d for d in bank}
