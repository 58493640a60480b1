"""subject_remove: take one object out of the picture and fill where it was with background.

cpu profile: boxes from annotations -> GrabCut masks -> one candidate per object, its mask
grown to cover the object's soft edge -> OpenCV inpainting (small holes only; larger ones are
skipped) -> bilingual template instruction -> removal gates.
tiny and gpu (the seed's chain): Florence-2 grounding -> SAM-2 -> the same candidates ->
Flux-Fill with a background prompt -> instruction -> gates.

The candidate step here is shared with subject_add, which is a removal read backwards."""

from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from filters.mask_change import dilate
from filters.remove_gate import RemoveGateStage
from pipeline.core import schema
from pipeline.core.image_io import decode_mask, encode_image
from pipeline.core.rows import blob, record_fallback, record_stage, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import (
    box_mask,
    mask_methods,
    new_candidate,
    object_mask_stages,
    object_phrases,
)
from stages.opencv_inpaint import OpenCvInpaintStage
from stages.template_instructions import TemplateInstructionStage

TASK = "subject_remove"
PROFILES = ("cpu", "tiny", "gpu")

TEMPLATES_EN = [
    "Remove the {object}.",
    "Take the {object} out of the picture.",
    "Erase the {object}, leaving the background behind it.",
    "Delete the {object} from the image.",
    "Get rid of the {object}.",
]
TEMPLATES_ZH = [
    "移除{object}。",
    "把{object}去掉。",
    "删除画面中的{object}。",
    "将{object}从图中抹去，露出后面的背景。",
    "去掉图里的{object}。",
]

# (object, every annotated object, image width and height) -> slots_en, slots_zh and any extra edit fields
Describe = Callable[[dict, list[dict], tuple[int, int]], dict[str, Any]]


def describe_removal(obj: dict, objects: list[dict], size: tuple[int, int]) -> dict[str, Any]:
    en, zh = object_phrases(obj)
    return {"slots_en": {"object": en}, "slots_zh": {"object": zh}}


def box_span(mask: np.ndarray, box: list[float]) -> float:
    """How much of the box's width and height the mask reaches across (the smaller of the two):
    a mask that stops halfway up its box has left part of the object out."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.0
    x, y, w, h = box
    across = (min(xs.max() + 1, x + w) - max(xs.min(), x)) / max(1.0, w)
    down = (min(ys.max() + 1, y + h) - max(ys.min(), y)) / max(1.0, h)
    return float(max(0.0, min(across, down)))


def object_region(mask: np.ndarray, box: list[float], method: str | None, min_span: float) -> tuple[np.ndarray, str]:
    """What must go for the object to be gone: the segmenter's mask, or the whole box where the
    segmenter failed (its ellipse stand-in cuts the box's corners) or covered only part of the
    object. Removal errs on the side of filling more."""
    if method == "ellipse":
        return box_mask(box, mask.shape), "box: segmenter fell back to an ellipse"
    if box_span(mask, box) < min_span:
        return box_mask(box, mask.shape), f"box: mask spans {box_span(mask, box):.0%} of the box"
    return mask, method or "mask"


def removal_mask(mask: np.ndarray, dilate_px: int, hull: bool) -> np.ndarray:
    """The region to fill: the object's region, its convex hull when asked (segmenters leave out
    thin or background-coloured parts, and a removal that leaves a fragment behind is worse
    than one that fills a little more), grown by `dilate_px` to take the soft edge and any
    colour halo with it."""
    region = mask.astype(np.uint8)
    if hull and region.any():
        points = cv2.findNonZero(region)
        region = np.zeros_like(region)
        cv2.fillConvexPoly(region, cv2.convexHull(points), 1)
    return dilate(region, dilate_px)


class RemovalProposeStage(Stage):
    """One candidate per selected object: its removal mask as the row's mask, the background
    prompt for a generator, and the instruction slots `describe` gives."""

    name = "removal_propose"
    reads = ("width", "height", "work.selected", "work.objects", "blob.mask:*", "provenance", "source_sha256", "_input")
    writes = ("sample_id", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=8)
    fans_out = True

    def __init__(self, task: str, describe: Describe, dilate_fraction: float, hull: bool, min_box_span: float, background_prompt: str):
        self.task = task
        self.min_box_span = min_box_span
        self.tasks = (task,)
        self.describe = describe
        self.dilate_fraction = dilate_fraction
        self.hull = hull
        self.background_prompt = background_prompt

    def process_row(self, row: Row) -> list[Row]:
        state = work(row)
        size = (row["width"], row["height"])
        dilate_px = max(1, int(round(self.dilate_fraction * max(size))))
        methods = mask_methods(row)
        out: list[Row] = []
        for i, obj in enumerate(state["selected"]):
            method = methods[i] if i < len(methods) else None
            region, region_source = object_region(decode_mask(blob(row, f"mask:{i}")), obj["bbox"], method, self.min_box_span)
            mask = removal_mask(region, dilate_px, self.hull)
            candidate = new_candidate(row, self.task, len(out), drop_blobs="mask:")
            candidate["mask"] = schema.image_value(encode_image(mask.astype(np.uint8) * 255))
            edit = {
                "type": self.task,
                "object": obj["label"],
                "position": obj.get("position"),
                "box_xywh": obj["bbox"],
                "mask_source": region_source,
                "mask_dilate_px": dilate_px,
                "mask_hull": self.hull,
                "mask_fraction": round(float(mask.mean()), 4),
                "prompt": self.background_prompt,
            }
            edit.update(self.describe(obj, state.get("objects") or [], size))
            candidate["edit"] = schema.dumps(edit)
            if region_source.startswith("box"):
                record_fallback(candidate, self.name, f"object {i} ({obj['label']}): {region_source}")
            record_stage(candidate, self.name, object_index=i, mask_source=region_source)
            out.append(candidate)
        return out


def removal_stages(task: str, cfg: dict[str, Any], describe: Describe) -> list[Stage]:
    """Everything up to the picture without the object, for `task`'s rows: the shared first half
    of subject_remove and subject_add."""
    task_cfg = cfg["tasks"][task]
    only = (task,)
    objects = object_mask_stages(cfg, task)
    propose = RemovalProposeStage(
        task, describe, task_cfg["mask_dilate_fraction"], task_cfg["mask_hull"], task_cfg["min_box_span"],
        task_cfg["background_prompt"],
    )
    if cfg["profile"] == "cpu":
        fill = task_cfg["cpu_inpaint"]
        return [*objects, propose, OpenCvInpaintStage(only, fill["method"], fill["radius_px"], fill["max_area_fraction"], fill["texture_edge_density"])]
    from stages.models.factory import make_stage

    return [*objects, propose, make_stage("flux_fill", cfg, only)]


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return RemoveGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    only = (TASK,)
    return [
        *removal_stages(TASK, cfg, describe_removal),
        TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH),
        gate(cfg),
    ]
