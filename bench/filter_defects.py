"""The defects the filter benchmark plants in good triplets, each a damaged target built from a
good row (see bench.filter_benchmark for the kinds). How hard each one is comes from SEVERITY,
which the benchmark sets from SEVERITIES before it plants anything; every random choice is
seeded by the row's sample id and the kind, so a rerun plants the same defects."""

from __future__ import annotations

import random
from typing import Any

import cv2
import numpy as np

from filters.hue import hue_distance, rgb_hue
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.stage import Row
from stages.lab_recolor import recolor
from stages.vocabulary import COLORS
from tasks.text.render import render_replacement
from tasks.text.words import replacement_options

KINDS = ("unrelated", "noop", "leak", "noise", "blur", "noise_inside", "blur_inside", "shifted", "wrong_colour", "wrong_text")
# how hard each defect is: `standard` is the benchmark; `mild` shows where the limits give out
SEVERITIES = {
    "standard": {"noise_sigma": 25.0, "blur_sigma": 2.0, "shift": (0.02, 0.04), "leak": 0.04},
    "mild": {"noise_sigma": 8.0, "blur_sigma": 1.0, "shift": (0.005, 0.01), "leak": 0.01},
}
SEVERITY = dict(SEVERITIES["standard"])  # leak: the spill reaches this share of the long side beyond the mask


def _rng(row: Row, kind: str) -> random.Random:
    return random.Random(f"{row['sample_id']}|{kind}")


def add_noise(target: np.ndarray, rng: random.Random) -> np.ndarray:
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, SEVERITY["noise_sigma"], target.shape)
    return np.clip(target.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def blur(target: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(target, (0, 0), SEVERITY["blur_sigma"])


def inside_only(damaged: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`damaged` inside the mask, `target` elsewhere: the edited object itself degraded."""
    out = target.copy()
    out[mask] = damaged[mask]
    return out


def shift(target: np.ndarray, rng: random.Random) -> np.ndarray:
    height, width = target.shape[:2]
    distance = rng.uniform(*SEVERITY["shift"]) * max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    matrix = np.float32([[1, 0, distance * np.cos(angle)], [0, 1, distance * np.sin(angle)]])
    return cv2.warpAffine(target, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def leak(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The edit's colour change spilled over a band around the mask: the band takes the mean
    colour shift the edit made inside, the way a sloppy recolour or inpaint bleeds."""
    reach = max(4, round(SEVERITY["leak"] * max(mask.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    band = (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~mask
    shift_rgb = target[mask].astype(np.float32).mean(axis=0) - source[mask].astype(np.float32).mean(axis=0)
    if np.abs(shift_rgb).max() < 20:  # an edit with no net colour change (remove, text): spill its texture
        shift_rgb = np.array([40.0, -30.0, 30.0])
    out = target.copy()
    out[band] = np.clip(source[band].astype(np.float32) + shift_rgb, 0, 255).astype(np.uint8)
    return out


def wrong_colour(source: np.ndarray, mask: np.ndarray, edit: dict, cfg: dict[str, Any]) -> np.ndarray:
    """The object recoloured to the palette colour farthest in hue from the stated one."""
    task_cfg = cfg["tasks"]["color_alteration"]
    stated = edit["target_hue"]
    other = max(task_cfg["palette"], key=lambda c: hue_distance(rgb_hue(COLORS[c][2]), stated))
    return recolor(source, mask, COLORS[other][2], task_cfg["lightness_shift"], task_cfg["feather_px"])


def wrong_text(source: np.ndarray, erased: np.ndarray, mask: np.ndarray, edit: dict, cfg: dict[str, Any]) -> np.ndarray:
    """Other words than the instruction's, drawn in the same place, font and colour."""
    stated = edit["new_text"]
    options = [w for w in replacement_options(edit["old_text"], edit["lang"] == "zh") if w.casefold() != stated.casefold()]
    options = options or ["WRONG" if edit["lang"] != "zh" else "错误"]
    other = dict(edit, new_text=options[0])
    return render_replacement(source, erased, mask, other, cfg["tasks"]["text_modification"]["feather_px"])


def unrelated(row: Row, pool: list[Row]) -> np.ndarray | None:
    """Another photo's target of the same task, resized to this row's size."""
    others = [r for r in pool if r["task"] == row["task"] and r["source_sha256"] != row["source_sha256"]]
    if not others:
        return None
    other = decode_image(_rng(row, "unrelated").choice(others)["target_image"]["bytes"])
    height, width = decode_image(row["source_image"]["bytes"]).shape[:2]
    return cv2.resize(other, (width, height), interpolation=cv2.INTER_AREA)


def plant(row: Row, pool: list[Row], erased: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every defect that applies to this good row, as damaged targets by kind."""
    source = decode_image(row["source_image"]["bytes"])
    target = decode_image(row["target_image"]["bytes"])
    mask = decode_mask(row["mask"]["bytes"]) if row.get("mask") else None
    edit = schema.loads(row.get("edit"))
    out: dict[str, np.ndarray] = {
        "noop": source.copy(),
        "noise": add_noise(target, _rng(row, "noise")),
        "blur": blur(target),
        "shifted": shift(target, _rng(row, "shifted")),
    }
    other = unrelated(row, pool)
    if other is not None:
        out["unrelated"] = other
    if mask is not None:
        out["noise_inside"] = inside_only(out["noise"], target, mask)
        out["blur_inside"] = inside_only(out["blur"], target, mask)
    if mask is not None and row["task"] != "background_change":  # there the mask is the edited background
        out["leak"] = leak(source, target, mask)
    if row["task"] == "color_alteration":
        out["wrong_colour"] = wrong_colour(source, mask, edit, cfg)
    if row["task"] == "text_modification" and row["sample_id"] in erased:
        out["wrong_text"] = wrong_text(source, erased[row["sample_id"]], mask, edit, cfg)
    return out
