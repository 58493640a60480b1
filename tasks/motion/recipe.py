"""motion_change: the same scene a moment later, the subject moved; the source is the earlier
frame of a video, the target a later one.

Every profile: strided frames -> foreground masks (median background or MOG2) -> one candidate
per pair of frames where the subject shows in both -> optical flow (DIS or Farneback) -> template
instruction from the mask's shift -> gates (background still, subject moved, no cut).
tiny and gpu add Qwen2.5-VL, which sees both frames and words the change; a reply that does not
fit keeps the template instruction, recorded as a fallback."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from filters.motion_gate import MotionGateStage
from pipeline.core import schema
from pipeline.core.image_io import decode_mask, encode_image
from pipeline.core.rows import blob, record_stage, work
from pipeline.core.stage import Resources, Row, Stage
from stages.candidates import new_candidate
from stages.vocabulary import object_zh
from tasks.motion.describe import MotionDescribeStage
from tasks.motion.direction import DIRECTION_EN, DIRECTION_ZH, classify_motion
from tasks.motion.frames import MotionFramesStage
from tasks.motion.instructions import MotionTemplateStage
from tasks.motion.mask import ForegroundMaskStage, mask_summary
from tasks.motion.optical_flow import MotionFlowStage

TASK = "motion_change"
PROFILES = ("cpu", "tiny", "gpu")

# per kind of motion: (English, Chinese) templates; "move", "rise" and "fall" take a direction
TEMPLATES: dict[str, tuple[list[str], list[str]]] = {
    "move": (
        [
            "Move the {object} {direction}.",
            "Shift the {object} {direction}.",
            "Slide the {object} {direction}.",
            "Have the {object} move {direction}, leaving the background as it is.",
        ],
        [
            "把{object}{direction}移动。",
            "将{object}{direction}挪动一些。",
            "让{object}{direction}滑动。",
            "使{object}{direction}移动，背景保持不变。",
        ],
    ),
    "rise": (
        [
            "Make the {object} jump {direction}.",
            "Lift the {object} {direction}.",
            "Have the {object} bounce {direction}.",
            "Raise the {object}, moving it {direction}.",
        ],
        [
            "让{object}{direction}跳起。",
            "把{object}{direction}抬起。",
            "使{object}{direction}弹起。",
            "让{object}{direction}升起，背景保持不变。",
        ],
    ),
    "fall": (
        [
            "Make the {object} drop {direction}.",
            "Let the {object} fall {direction}.",
            "Lower the {object}, moving it {direction}.",
            "Have the {object} come down, moving {direction}.",
        ],
        [
            "让{object}{direction}落下。",
            "把{object}{direction}放低。",
            "使{object}{direction}下落。",
            "让{object}{direction}掉落，背景保持不变。",
        ],
    ),
    "approach": (
        [
            "Bring the {object} closer to the camera.",
            "Move the {object} nearer.",
            "Make the {object} come closer.",
            "Have the {object} approach the camera.",
        ],
        ["让{object}靠近镜头。", "把{object}移近一些。", "使{object}离镜头更近。", "让{object}朝镜头走近。"],
    ),
    "recede": (
        [
            "Move the {object} farther away.",
            "Send the {object} away from the camera.",
            "Make the {object} recede into the distance.",
            "Have the {object} move away from the camera.",
        ],
        ["让{object}远离镜头。", "把{object}移远一些。", "使{object}离镜头更远。", "让{object}向远处离去。"],
    ),
}


# names of things that move in clips, where the shared vocabulary has none
SUBJECT_ZH = {"ball": "球", "runner": "跑步的人", "player": "球员", "skier": "滑雪的人", "cyclist": "骑车的人", "child": "孩子"}


def subject_name(objects: list[dict] | None, first_box: list[int] | None, scale: tuple[float, float], generic: tuple[str, str]) -> tuple[str, str, str]:
    """(English, Chinese, where from). Annotated boxes describe the first frame: the label whose
    box holds most of the first frame's foreground box names the subject; a single annotation
    names it anyway. Otherwise the generic noun."""
    objects = objects or []
    best, best_overlap = None, 0.0
    if first_box:
        fx, fy, fw, fh = first_box
        for obj in objects:
            x, y, w, h = (obj["bbox"][0] * scale[0], obj["bbox"][1] * scale[1], obj["bbox"][2] * scale[0], obj["bbox"][3] * scale[1])
            overlap = max(0.0, min(x + w, fx + fw) - max(x, fx)) * max(0.0, min(y + h, fy + fh) - max(y, fy)) / max(1, fw * fh)
            if overlap > best_overlap:
                best, best_overlap = obj, overlap
    if best is None and len(objects) == 1:
        best = objects[0]
    if best is None:
        return generic[0], generic[1], "generic"
    label = best["label"]
    return label, object_zh(label) or SUBJECT_ZH.get(label) or label, "annotation"


def choose_pairs(present: list[bool], gap: int, max_pairs: int) -> list[tuple[int, int]]:
    """Sampled-frame pairs `gap` apart with a subject in both frames, at most `max_pairs` spread
    evenly over the clip."""
    pairs = [(i, i + gap) for i in range(len(present) - gap) if present[i] and present[i + gap]]
    if len(pairs) <= max_pairs:
        return pairs
    return [pairs[int(round(k))] for k in np.linspace(0, len(pairs) - 1, max_pairs)]


class MotionProposeStage(Stage):
    """One candidate per chosen pair: the earlier frame as source, the later as target, the union
    of both frames' foreground as mask, and in `edit` the frames, shift, kind and direction."""

    name = "motion_propose"
    reads = (
        "work.motion_frames", "work.video", "work.objects", "width", "height", "blob.frame:*", "blob.fg:*",
        "source_image", "source_sha256", "_input",
    )
    writes = ("sample_id", "blob.subject:source", "source_image", "target_image", "mask", "edit", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=2)
    fans_out = True
    tasks = (TASK,)

    def __init__(self, pair_gap: int, max_pairs: int, scale_ratio: float, generic: tuple[str, str]):
        self.pair_gap, self.max_pairs, self.scale_ratio = pair_gap, max_pairs, scale_ratio
        self.generic = generic

    def process_row(self, row: Row) -> list[Row]:
        state = work(row)
        sampled = state["motion_frames"]
        width, height = int(row["width"]), int(row["height"])
        video = state["video"]
        scale = (width / video["width"], height / video["height"])
        first_box = sampled[0]["box_xywh"]
        en_object, zh_object, named_by = subject_name(state.get("objects"), first_box, scale, self.generic)
        out: list[Row] = []
        for a, b in choose_pairs([f["area"] > 0 for f in sampled], self.pair_gap, self.max_pairs):
            fa, fb = sampled[a], sampled[b]
            mask_a, mask_b = decode_mask(blob(row, f"fg:{a}")), decode_mask(blob(row, f"fg:{b}"))
            union = mask_a | mask_b
            shift = [round(fb["centroid"][0] - fa["centroid"][0], 2), round(fb["centroid"][1] - fa["centroid"][1], 2)]
            area_ratio = fb["area"] / fa["area"]
            kind, direction = classify_motion(shift, area_ratio, math.sqrt(fa["area"] * width * height), self.scale_ratio)
            slots_en, slots_zh = {"object": en_object}, {"object": zh_object}
            if direction:
                slots_en["direction"], slots_zh["direction"] = DIRECTION_EN[direction], DIRECTION_ZH[direction]
            candidate = new_candidate(row, TASK, len(out))
            candidate["_blobs"] = [{"name": "subject:source", "data": encode_image(mask_a.astype(np.uint8) * 255)}]
            candidate["source_image"] = schema.image_value(blob(row, f"frame:{a}"), row["source_image"].get("path"))
            candidate["target_image"] = schema.image_value(blob(row, f"frame:{b}"))
            candidate["mask"] = schema.image_value(encode_image(union.astype(np.uint8) * 255))
            candidate["edit"] = schema.dumps(
                {
                    "type": TASK,
                    "object": en_object,
                    "object_source": named_by,
                    "kind": kind,
                    "direction": direction,
                    "source_frame": fa["index"],
                    "target_frame": fb["index"],
                    "source_time": fa["time"],
                    "target_time": fb["time"],
                    "seconds_apart": round(fb["time"] - fa["time"], 3),
                    "shift_px": shift,
                    "shift_fraction": round(math.hypot(*shift) / max(width, height), 4),
                    "area_ratio": round(area_ratio, 3),
                    "box_xywh": mask_summary(union)["box_xywh"],
                    "source_box_xywh": fa["box_xywh"],
                    "target_box_xywh": fb["box_xywh"],
                    "slots_en": slots_en,
                    "slots_zh": slots_zh,
                }
            )
            record_stage(candidate, self.name, pair=[a, b], pair_gap=self.pair_gap)
            out.append(candidate)
        return out


def describe_stage(cfg: dict[str, Any], only: tuple[str, ...]) -> Stage:
    """Qwen2.5-VL wording the change, loaded and sized as the choose-an-edit stage."""
    return MotionDescribeStage.from_config(cfg, only)


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return MotionGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    """The same measuring chain on every profile (it needs no weights); tiny and gpu let
    Qwen2.5-VL word the instruction over the template."""
    task_cfg = cfg["tasks"][TASK]
    only = (TASK,)
    stages: list[Stage] = [
        MotionFramesStage(only, task_cfg["frame_stride"], task_cfg["max_frames"], task_cfg["min_seconds"], task_cfg["min_short_side"]),
        ForegroundMaskStage(only, task_cfg["foreground"]),
        MotionProposeStage(task_cfg["pair_gap"], task_cfg["max_pairs"], task_cfg["scale_ratio"], (task_cfg["subject_en"], task_cfg["subject_zh"])),
        MotionFlowStage(only, task_cfg["flow"]["method"], task_cfg["flow"]["margin_px"]),
        MotionTemplateStage(only, TEMPLATES),
    ]
    if cfg["profile"] != "cpu":
        stages.append(describe_stage(cfg, only))
    stages.append(gate(cfg))
    return stages
