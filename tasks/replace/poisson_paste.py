"""Replace an object with a cut-out from another picture, classically: the old object is filled
in from its surroundings (OpenCV inpainting), the donor is scaled into the old object's box and
Poisson-blended there (cv2.seamlessClone), so its edges take on the scene's light.

Poisson blending keeps the donor's gradients but not its colours: a flat donor would fade into
the scene, so part of the donor's own colour is mixed back in away from its edge."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import blob, record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.diffusion_common import dilate
from stages.grabcut_mask import ellipse_mask
from stages.lab_recolor import inner_alpha
from stages.opencv_inpaint import choose_method, crop_around, inpaint
from tasks.replace.object_bank import by_id, donor_bank

# scratch a proposal may leave on a candidate: the masks of the input's other objects, joined
OTHER_OBJECTS = "other_objects"


def place_donor(
    donor_rgb: np.ndarray, donor_alpha: np.ndarray, old_mask: np.ndarray, cover: float
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The donor on an empty canvas the size of the scene: scaled to the old object's box
    (`cover` 0: fits inside it, 1: covers it, in between: geometric mix), centred on it
    horizontally and standing on its bottom edge, shifted where needed to stay inside the picture.
    Returns the canvas, where the donor lies, and its box (x, y, w, h)."""
    height, width = old_mask.shape
    bx, by, bw, bh = cv2.boundingRect(old_mask.astype(np.uint8))
    if bw == 0 or bh == 0:
        raise ValueError("the object's mask is empty")
    dh, dw = donor_alpha.shape
    fit, cover_scale = min(bw / dw, bh / dh), max(bw / dw, bh / dh)
    # never larger than the picture: a donor cut off at the frame loses what makes it recognisable
    scale = min(fit ** (1.0 - cover) * cover_scale**cover, width / dw, height / dh)
    nw, nh = min(width, max(2, round(dw * scale))), min(height, max(2, round(dh * scale)))
    shrink = scale < 1.0
    rgb = cv2.resize(donor_rgb, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    alpha = cv2.resize(donor_alpha.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    x0 = min(max(0, bx + (bw - nw) // 2), width - nw)
    y0 = min(max(0, by + bh - nh), height - nh)
    canvas = np.zeros((height, width, 3), np.uint8)
    placed = np.zeros((height, width), bool)
    canvas[y0 : y0 + nh, x0 : x0 + nw] = rgb
    placed[y0 : y0 + nh, x0 : x0 + nw] = alpha
    return canvas, placed, [int(x0), int(y0), int(nw), int(nh)]


def fill_hole(rgb: np.ndarray, hole: np.ndarray, method: str = "auto", texture_edge_density: float = 0.08) -> tuple[np.ndarray, str]:
    """The old object's place filled from nearby (shift-map on texture, Telea on smooth ground);
    most of it is covered by the donor afterwards."""
    ys, xs = crop_around(hole)
    if method == "auto":
        method = choose_method(rgb[ys, xs], hole[ys, xs], texture_edge_density)
    out = rgb.copy()
    out[ys, xs] = inpaint(rgb[ys, xs], hole[ys, xs], method)
    return out, method


def poisson_blend(canvas: np.ndarray, placed: np.ndarray, scene: np.ndarray) -> np.ndarray:
    """The donor's gradients inside `placed`, with the scene's values on its boundary."""
    mask = placed.astype(np.uint8) * 255
    # seamlessClone needs a one-pixel frame of scene around the region
    mask[[0, -1], :] = 0
    mask[:, [0, -1]] = 0
    if not mask.any():
        raise ValueError("the donor covers no pixel away from the picture's edge")
    x, y, w, h = cv2.boundingRect(mask)
    # with source and scene the same size, this centre puts the region back where it was
    centre = (x + w // 2, y + h // 2)
    return cv2.seamlessClone(canvas, np.ascontiguousarray(scene), mask, centre, cv2.NORMAL_CLONE)


def poisson_replace(
    source: np.ndarray,
    old_mask: np.ndarray,
    donor_rgb: np.ndarray,
    donor_alpha: np.ndarray,
    fill_grow_px: int,
    keep_colour: float,
    edge_px: int,
    cover: float,
    fill_method: str = "auto",
    prior_box: list[float] | None = None,
    protect: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The edited picture, the region it differs in (old object grown, plus the donor), and where
    the donor went. Outside the region the source is kept exactly. With `prior_box` (x, y, w, h)
    the ellipse inside that box is filled in as well, except where `protect` (other objects) lies."""
    hole = dilate(old_mask, fill_grow_px)
    if prior_box is not None:
        # a segmenter misses object parts that look like their surroundings (a red cup on a red
        # saucer); the ellipse inscribed in the object's box takes those too, but never what
        # another object's mask claims
        ellipse = ellipse_mask(prior_box, (source.shape[1], source.shape[0]))
        if protect is not None:
            ellipse &= ~protect
        hole |= ellipse
    filled, method = fill_hole(source, hole, fill_method)
    canvas, placed, box = place_donor(donor_rgb, donor_alpha, old_mask, cover)
    cloned = poisson_blend(canvas, placed, filled).astype(np.float32)
    weight = (keep_colour * inner_alpha(placed, edge_px))[..., None]
    donor = np.round(cloned * (1.0 - weight) + canvas.astype(np.float32) * weight).astype(np.uint8)
    out = source.copy()
    out[hole] = filled[hole]
    out[placed] = donor[placed]
    region = hole | placed
    covered = float((placed & old_mask).sum() / max(1, old_mask.sum()))
    return out, region, {"new_box_xywh": box, "old_area_covered": round(covered, 3), "fill_method": method}


class PoissonPasteStage(Stage):
    """Draws the target of a replace candidate from the donor its edit names; the row's mask
    becomes the region that changed."""

    name = "poisson_paste"
    reads = ("edit", "source_image", "mask", "blob.other_objects?")
    writes = ("target_image", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.5, batch_size=4)

    def __init__(
        self, tasks: tuple[str, ...], bank: dict[str, Any], fill_grow_px: int, keep_colour: float, edge_px: int, cover: float,
        fill_method: str = "auto", fill_box_ellipse: bool = True,
    ):
        self.tasks = tasks
        self.fill_method, self.fill_box_ellipse = fill_method, fill_box_ellipse
        self.bank_params = dict(bank)
        self.fill_grow_px, self.keep_colour, self.edge_px, self.cover = fill_grow_px, keep_colour, edge_px, cover
        self.donors: dict | None = None

    def setup(self) -> None:
        self.donors = by_id(donor_bank(**self.bank_params))

    def process_row(self, row: Row) -> Row:
        if self.donors is None:
            self.setup()
        edit = schema.loads(row["edit"])
        donor = self.donors.get(edit["donor"]["id"])
        if donor is None:
            raise KeyError(f"donor {edit['donor']['id']} is not in this worker's bank")
        source = decode_image(row["source_image"]["bytes"])
        target, region, placement = poisson_replace(
            source, decode_mask(row["mask"]["bytes"]), donor.rgb, donor.alpha,
            self.fill_grow_px, self.keep_colour, self.edge_px, self.cover, self.fill_method,
            edit["box_xywh"] if self.fill_box_ellipse else None,
            decode_mask(others) if (others := blob(row, OTHER_OBJECTS)) else None,
        )
        row["target_image"] = schema.image_value(encode_image(target))
        row["mask"] = schema.image_value(encode_image(region.astype(np.uint8) * 255))
        edit.update(placement)
        row["edit"] = schema.dumps(edit)
        record_stage(
            row, self.name, backend="cv2.seamlessClone", donor=donor.id, mask_dilate_px=0,
            keep_colour=self.keep_colour, cover=self.cover, **placement,
        )
        return row
