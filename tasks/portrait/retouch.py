"""Classical portrait retouching inside a skin mask: smoothing that keeps fine texture, an even
tone, brightening, and an optional slight slimming warp of the lower face. Applied to the source
(cpu) or on top of Flux-Fill's refinement (gpu); nothing outside the edit mask changes."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import blob, record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.lab_recolor import inner_alpha, lab_to_rgb, rgb_to_lab

OPERATIONS = ("smooth", "even_tone", "brighten", "slim")


def _blend(base: np.ndarray, edited: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    return base.astype(np.float32) * (1.0 - a) + edited.astype(np.float32) * a


def smooth_skin(
    rgb: np.ndarray, alpha: np.ndarray, face_width: float, radius_fraction: float, eps: float, detail_keep: float, strength: float
) -> np.ndarray:
    """Guided-filter smoothing (edges kept, blotches and mid-size texture flattened) with a share
    of the finest detail added back, mixed in at `strength`, so skin does not turn to plastic."""
    img = rgb.astype(np.float32) / 255.0
    radius = max(2, int(round(radius_fraction * face_width)))
    smooth = cv2.ximgproc.guidedFilter(img, img, radius, eps)
    fine = img - cv2.GaussianBlur(img, (0, 0), 0.8)
    edited = np.clip(smooth + detail_keep * fine, 0.0, 1.0) * 255.0
    return np.clip(np.round(_blend(rgb, edited, strength * alpha)), 0, 255).astype(np.uint8)


def even_tone(rgb: np.ndarray, alpha: np.ndarray, face_width: float, amount: float) -> np.ndarray:
    """Pull the slowly varying colour of the skin (red patches, sallow ones) toward the skin's
    mean; the slow colour is averaged over skin only, so hair and background do not bleed in."""
    lab = rgb_to_lab(rgb)
    weight = (alpha > 0.5).astype(np.float32)
    if weight.sum() < 1:
        return rgb
    sigma = max(2.0, face_width / 10)
    low = cv2.GaussianBlur(lab[..., 1:] * weight[..., None], (0, 0), sigma) / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-3)[..., None]
    mean = lab[..., 1:][weight > 0].mean(axis=0)
    edited = lab.copy()
    edited[..., 1:] = lab[..., 1:] - amount * (low - mean)
    return np.clip(np.round(_blend(rgb, lab_to_rgb(edited), alpha)), 0, 255).astype(np.uint8)


def brighten(rgb: np.ndarray, alpha: np.ndarray, amount: float) -> np.ndarray:
    """A gamma lift of lightness: shadows on the face open up more than highlights."""
    lab = rgb_to_lab(rgb)
    lab[..., 0] = 100.0 * np.power(np.clip(lab[..., 0], 0, 100) / 100.0, 1.0 / (1.0 + amount))
    return np.clip(np.round(_blend(rgb, lab_to_rgb(lab), alpha)), 0, 255).astype(np.uint8)


def slim_field(box, shape: tuple[int, int], amount: float) -> np.ndarray:
    """Horizontal sampling offsets that draw the cheeks and jaw toward the face's centre line;
    exactly zero away from the lower face."""
    x, y, w, h = box
    height, width = shape[:2]
    cx, cy = x + w / 2, y + 0.72 * h
    sx, sy = 0.45 * w, 0.3 * h
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    bump = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    cutoff = 0.1  # beyond ~2 sigma the field is cut to zero, smoothly
    bump = np.clip((bump - cutoff) / (1.0 - cutoff), 0.0, None)
    return (amount * (xx - cx) * bump).astype(np.float32)


def slim_region(box, shape: tuple[int, int], amount: float) -> np.ndarray:
    return np.abs(slim_field(box, shape, amount)) > 0 if amount > 0 else np.zeros(shape[:2], bool)


def slim_face(rgb: np.ndarray, box, amount: float) -> np.ndarray:
    dx = slim_field(box, rgb.shape, amount)
    yy, xx = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]].astype(np.float32)
    warped = cv2.remap(rgb, xx + dx, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    warped[dx == 0] = rgb[dx == 0]
    return warped


def retouch(rgb: np.ndarray, skin: np.ndarray, box, operations: list[str], params: dict) -> np.ndarray:
    """The operations in a fixed order (smooth, even tone, brighten, slim), computed on a crop
    around the face for speed; pixels outside the skin and the warp region keep their values."""
    unknown = [op for op in operations if op not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown retouch operations {unknown}; known: {', '.join(OPERATIONS)}")
    touched = skin | (slim_region(box, rgb.shape, params["slim"]) if "slim" in operations else False)
    if not touched.any():
        return rgb.copy()
    ys, xs = np.nonzero(touched)
    pad = int(round(0.3 * box[2])) + 4
    y0, y1 = max(0, ys.min() - pad), min(rgb.shape[0], ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(rgb.shape[1], xs.max() + pad + 1)
    local_box = [box[0] - x0, box[1] - y0, box[2], box[3]]
    crop = _retouch_crop(np.ascontiguousarray(rgb[y0:y1, x0:x1]), skin[y0:y1, x0:x1], local_box, operations, params)
    out = rgb.copy()
    out[y0:y1, x0:x1] = crop
    return out


def _retouch_crop(rgb: np.ndarray, skin: np.ndarray, box, operations: list[str], params: dict) -> np.ndarray:
    face_width = float(box[2])
    alpha = inner_alpha(skin, max(1, int(round(params["feather_fraction"] * face_width))))
    out = rgb
    if "smooth" in operations:
        out = smooth_skin(out, alpha, face_width, params["smooth_radius_fraction"], params["smooth_eps"], params["detail_keep"], params["smooth_strength"])
    if "even_tone" in operations:
        out = even_tone(out, alpha, face_width, params["even_tone"])
    if "brighten" in operations:
        out = brighten(out, alpha, params["brighten"])
    if "slim" in operations:
        out = slim_face(out, box, params["slim"])
    return out


class PortraitRetouchStage(Stage):
    """Retouches the target where a generator already refined it, else the source."""

    name = "portrait_retouch"
    reads = ("edit", "source_image", "target_image?", "blob.skin", "mask")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], params: dict):
        self.tasks = tasks
        self.params = dict(params)

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        source = decode_image(row["source_image"]["bytes"])
        refined = row.get("target_image")
        skin = decode_mask(blob(row, "skin"))
        mask = decode_mask(row["mask"]["bytes"])
        base = source
        if refined:
            # the generator pastes into a margin around the mask: fade it out inside the mask instead
            feather = max(1, int(round(self.params["feather_fraction"] * edit["box_xywh"][2])))
            base = np.round(_blend(source, decode_image(refined["bytes"]), inner_alpha(mask, feather))).astype(np.uint8)
        out = retouch(base, skin, edit["box_xywh"], edit["retouch"], self.params)
        out[~mask] = source[~mask]
        row["target_image"] = schema.image_value(encode_image(out))
        record_stage(row, self.name, backend="opencv (guided filter, Lab, remap)", operations=edit["retouch"], on="flux_fill" if refined else "source", **self.params)
        return row
