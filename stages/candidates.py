"""What every task's proposal step shares: the selected objects and their masks before it, a
random stream per input that reruns repeat, the words for a selected object, and the copy of the
input row that each candidate starts from."""

from __future__ import annotations

import hashlib
import random
from typing import Any, Sequence, TypeVar

import numpy as np

from pipeline.core import schema
from pipeline.core.rows import provenance, unit_identity
from pipeline.core.stage import Row, Stage
from stages.grabcut_mask import GrabCutMaskStage
from stages.grounding_phrases import GroundingPhrasesStage
from stages.select_objects import SelectObjectsStage
from stages.vocabulary import object_zh

T = TypeVar("T")

# which of two or more same-label objects is meant
POSITION_EN = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom", "middle": "in the middle"}
POSITION_ZH = {"left": "左边的", "right": "右边的", "top": "上方的", "bottom": "下方的", "middle": "中间的"}

MASK_STAGES = ("grabcut_mask", "sam2_mask")  # whichever made the objects' masks records its methods


def select_stage(task_cfg: dict[str, Any], only: tuple[str, ...]) -> SelectObjectsStage:
    return SelectObjectsStage(only, task_cfg["max_objects"], task_cfg["min_object_fraction"], task_cfg["max_object_fraction"], task_cfg["skip_labels"])


def grabcut_stage(cfg: dict[str, Any], only: tuple[str, ...]) -> GrabCutMaskStage:
    grabcut = cfg["stages"]["grabcut"]
    return GrabCutMaskStage(only, grabcut["iterations"], grabcut["box_margin"], grabcut["min_mask_fraction"], grabcut["max_mask_fraction"])


def object_mask_stages(cfg: dict[str, Any], task: str) -> list[Stage]:
    """The annotated objects a task edits, each with its mask: cpu takes the annotations' boxes to
    GrabCut; tiny and gpu (the seed's chain) ground the labels with Florence-2 and segment with SAM-2."""
    task_cfg = cfg["tasks"][task]
    only = (task,)
    select = select_stage(task_cfg, only)
    if cfg["profile"] == "cpu":
        return [select, grabcut_stage(cfg, only)]
    from stages.models.factory import make_stage

    return [GroundingPhrasesStage(only, task_cfg["skip_labels"]), make_stage("florence2", cfg, only), select, make_stage("sam2", cfg, only)]


def candidate_rng(row: Row, seed: int) -> random.Random:
    """The same draws for the same input on every rerun, whatever else the run holds."""
    key = f"{seed}|{unit_identity(row)}"
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest(), 16))


def draw(rng: random.Random, options: Sequence[T], count: int) -> list[T]:
    """Up to `count` of `options`, without repeats."""
    return rng.sample(options, min(count, len(options)))


def check_known(names: list[str], known: Sequence[str], what: str) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what}: {unknown}; known: {', '.join(known)}")


def check_renderable(names: list[str], renderable: set[str] | frozenset[str] | None, what: str) -> None:
    """A cpu recipe offers only what its classical backend can draw (None: a generator draws anything)."""
    if renderable is not None and set(names) - renderable:
        raise ValueError(f"{what}: {sorted(set(names) - renderable)}; have: {', '.join(sorted(renderable))}")


def object_names(label: str) -> tuple[str, str]:
    return label, object_zh(label) or label


def object_phrases(obj: dict[str, Any]) -> tuple[str, str]:
    """'cup on the left' / '左边的杯子' where the label alone is ambiguous, else the bare label."""
    en, zh = object_names(obj["label"])
    position = obj.get("position")
    if not position:
        return en, zh
    return f"{en} {POSITION_EN[position]}", f"{POSITION_ZH[position]}{zh}"


def mask_methods(row: Row) -> list[str]:
    """How each selected object's mask was made ('sam2', 'grabcut', or the 'ellipse' stand-in),
    in `selected` order."""
    stages = provenance(row).get("stages", {})
    for name in MASK_STAGES:
        methods = stages.get(name, {}).get("methods")
        if methods:
            return list(methods)
    return []


def box_mask(box: list[float], shape: tuple[int, int]) -> np.ndarray:
    x, y, w, h = box
    mask = np.zeros(shape, bool)
    mask[max(0, int(y)) : int(np.ceil(y + h)), max(0, int(x)) : int(np.ceil(x + w))] = True
    return mask


def input_key(row: Row) -> str:
    return schema.loads(row["_input"])["key"]


def new_candidate(row: Row, task: str, index: int, drop_blobs: str | None = None) -> Row:
    """The `index`-th candidate made from `row`: a copy with its own sample id. Scratch blobs whose
    name starts with `drop_blobs` (one per object: each candidate carries its own as a column)
    stay behind; the rest (a depth map) travel with it."""
    candidate = dict(row)
    if drop_blobs is not None:
        candidate["_blobs"] = [b for b in row.get("_blobs") or [] if not b["name"].startswith(drop_blobs)] or None
    candidate["sample_id"] = schema.sample_id(row["source_sha256"], input_key(row), task, index)
    return candidate
