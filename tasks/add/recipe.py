"""subject_add: put an object into the picture. Made as a removal read backwards: the object is
removed exactly as subject_remove does it, then source and target swap, so the source is the
filled-in picture and the target the real photo with the object in it.

The instruction says where the object goes: relative to a nearby annotated object when there is
one ("Add a spoon on the right of the saucer.", "在发射塔右边加一个火箭。"), else relative to the frame
("Add a rocket on the right of the picture.")."""

from __future__ import annotations

from typing import Any

from filters.remove_gate import AddGateStage
from pipeline.core.stage import Stage
from stages.candidates import object_names
from stages.template_instructions import TemplateInstructionStage
from tasks.add.swap_source_target import SwapSourceTargetStage
from tasks.remove.recipe import removal_stages

TASK = "subject_add"
PROFILES = ("cpu", "tiny", "gpu")

# {a_object}: 'a cup' / 'an eye'; {where}: next to another object if there is one, else in the frame
TEMPLATES_EN = [
    "Add {a_object} {where}.",
    "Put {a_object} {where}.",
    "Place {a_object} {where}.",
    "Insert {a_object} {where}.",
    "Add {a_object} {frame_where}.",
    "Place {a_object} {near}, {frame_where}.",
]
TEMPLATES_ZH = [
    "在{where}加一个{object}。",
    "在{where}添加一个{object}。",
    "往{where}放一个{object}。",
    "在{where}放上一个{object}。",
    "在{frame_where}加一个{object}。",
]

# the frame cut in thirds: (column, row) -> phrase
FRAME_EN = {
    ("left", "top"): "in the top left corner of the picture",
    ("centre", "top"): "at the top of the picture",
    ("right", "top"): "in the top right corner of the picture",
    ("left", "middle"): "on the left of the picture",
    ("centre", "middle"): "in the middle of the picture",
    ("right", "middle"): "on the right of the picture",
    ("left", "bottom"): "in the bottom left corner of the picture",
    ("centre", "bottom"): "at the bottom of the picture",
    ("right", "bottom"): "in the bottom right corner of the picture",
}
FRAME_ZH = {
    ("left", "top"): "画面左上角",
    ("centre", "top"): "画面上方",
    ("right", "top"): "画面右上角",
    ("left", "middle"): "画面左侧",
    ("centre", "middle"): "画面中间",
    ("right", "middle"): "画面右侧",
    ("left", "bottom"): "画面左下角",
    ("centre", "bottom"): "画面下方",
    ("right", "bottom"): "画面右下角",
}
# inside another object's box: which part of it, the same ninths as the frame
PART_EN = {
    ("left", "top"): "at the top left of the {other}",
    ("centre", "top"): "at the top of the {other}",
    ("right", "top"): "at the top right of the {other}",
    ("left", "middle"): "on the left of the {other}",
    ("centre", "middle"): "in the middle of the {other}",
    ("right", "middle"): "on the right of the {other}",
    ("left", "bottom"): "at the bottom left of the {other}",
    ("centre", "bottom"): "at the bottom of the {other}",
    ("right", "bottom"): "at the bottom right of the {other}",
}
PART_ZH = {
    ("left", "top"): "{other}的左上角",
    ("centre", "top"): "{other}的上部",
    ("right", "top"): "{other}的右上角",
    ("left", "middle"): "{other}的左侧",
    ("centre", "middle"): "{other}的中间",
    ("right", "middle"): "{other}的右侧",
    ("left", "bottom"): "{other}的左下角",
    ("centre", "bottom"): "{other}的下部",
    ("right", "bottom"): "{other}的右下角",
}
# beside another object
SIDE_EN = {"left": "to the left of the {other}", "right": "to the right of the {other}", "above": "above the {other}", "below": "below the {other}"}
SIDE_ZH = {"left": "{other}左边", "right": "{other}右边", "above": "{other}上方", "below": "{other}下方"}

CONTAINED = 0.8  # share of the object's box inside another's for it to sit "on" that one
NEAR_GAP = 0.25  # largest gap between boxes, as a share of the image's long side, to count as near


def with_article(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _centre(box: list[float]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def frame_position(box: list[float], width: float, height: float, left: float = 0.0, top: float = 0.0) -> tuple[str, str]:
    """Which ninth of the frame (or of another box at left, top) the box's centre falls in."""
    cx, cy = _centre(box)
    column = ("left", "centre", "right")[min(2, max(0, int(3 * (cx - left) / max(1e-6, width))))]
    row = ("top", "middle", "bottom")[min(2, max(0, int(3 * (cy - top) / max(1e-6, height))))]
    return column, row


def _overlap_share(inner: list[float], outer: list[float]) -> float:
    """Share of `inner`'s box area that lies inside `outer`'s."""
    x0, y0 = max(inner[0], outer[0]), max(inner[1], outer[1])
    x1, y1 = min(inner[0] + inner[2], outer[0] + outer[2]), min(inner[1] + inner[3], outer[1] + outer[3])
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) / max(1e-6, inner[2] * inner[3])


def _gap(a: list[float], b: list[float]) -> float:
    dx = max(0.0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return (dx * dx + dy * dy) ** 0.5


def _side(obj: list[float], other: list[float]) -> str:
    """left / right / above / below: the axis on which the centres lie furthest apart, relative
    to the boxes' sizes along it."""
    (ox, oy), (rx, ry) = _centre(obj), _centre(other)
    dx = (ox - rx) / max(1e-6, obj[2] + other[2])
    dy = (oy - ry) / max(1e-6, obj[3] + other[3])
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def nearby_relation(obj: dict, objects: list[dict], width: int, height: int) -> dict | None:
    """Where the object is relative to another annotated one, or None when none is near.
    Inside another's box: which part of that box (a box inside another says nothing about
    whether it rests on it or stands behind it, so only the picture-plane position is stated); of
    several such boxes, the largest, the likeliest to be the surface things stand on. Otherwise
    the nearest object within NEAR_GAP of the image's long side, and on which side of it."""
    others = [o for o in objects if o["bbox"] != obj["bbox"]]
    area = lambda o: o["bbox"][2] * o["bbox"][3]  # noqa: E731
    holders = [o for o in others if _overlap_share(obj["bbox"], o["bbox"]) >= CONTAINED and area(o) > area(obj)]
    if holders:
        other = max(holders, key=lambda o: (area(o), o["label"]))
        x, y, w, h = other["bbox"]
        return {"kind": "part", "part": frame_position(obj["bbox"], w, h, x, y), "other": other}
    near = [(gap, o["label"], i) for i, o in enumerate(others) if (gap := _gap(obj["bbox"], o["bbox"])) <= NEAR_GAP * max(width, height)]
    if not near:
        return None
    other = others[min(near)[2]]
    return {"kind": "side", "side": _side(obj["bbox"], other["bbox"]), "other": other}


def relation_phrases(relation: dict) -> tuple[str, str]:
    other_en, other_zh = object_names(relation["other"]["label"])
    if relation["kind"] == "part":
        key = tuple(relation["part"])
        return PART_EN[key].format(other=other_en), PART_ZH[key].format(other=other_zh)
    return SIDE_EN[relation["side"]].format(other=other_en), SIDE_ZH[relation["side"]].format(other=other_zh)


def describe_addition(obj: dict, objects: list[dict], size: tuple[int, int]) -> dict[str, Any]:
    width, height = size
    en, zh = object_names(obj["label"])
    frame = frame_position(obj["bbox"], width, height)
    slots_en = {"object": en, "a_object": with_article(en), "frame_where": FRAME_EN[frame], "where": FRAME_EN[frame]}
    slots_zh = {"object": zh, "frame_where": FRAME_ZH[frame], "where": FRAME_ZH[frame]}
    placement: dict[str, Any] = {"frame": list(frame)}
    relation = nearby_relation(obj, objects, width, height)
    if relation:
        near_en, near_zh = relation_phrases(relation)
        slots_en["near"] = slots_en["where"] = near_en
        slots_zh["near"] = slots_zh["where"] = near_zh
        placement.update(
            relation=relation["kind"], detail=relation.get("part") or relation.get("side"),
            reference=relation["other"]["label"], reference_box_xywh=relation["other"]["bbox"],
        )
    return {"placement": placement, "slots_en": slots_en, "slots_zh": slots_zh}


def gate(cfg: dict[str, Any]) -> Stage:
    """This task's own check, last in its chain; `score` runs it on rows made elsewhere too."""
    return AddGateStage((TASK,), cfg["tasks"][TASK]["gate"])


def build(cfg: dict[str, Any]) -> list[Stage]:
    """The removal chain on this task's rows, then the swap, then an instruction and gates that
    read the swapped pair."""
    only = (TASK,)
    return [
        *removal_stages(TASK, cfg, describe_addition),
        SwapSourceTargetStage(only),
        TemplateInstructionStage(only, TEMPLATES_EN, TEMPLATES_ZH),
        gate(cfg),
    ]
