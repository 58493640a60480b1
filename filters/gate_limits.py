"""Which config key holds each recorded gate's limit, so that a limit fitted on a gate's recorded
values can be written back as a config layer.

A row's `scores.gates` names each gate by its result (`outside_change`), not by the limit it read
(`max_outside_change`), and the same result name reads another key in another task
(`background_change` is an upper limit for motion, a lower one for background). The table below is
that map; `tests/test_gate_limits.py` checks it names every gate the filters record."""

from __future__ import annotations

from dataclasses import dataclass

from filters.gates import AT_LEAST, AT_MOST

# the limit lives in the task's `gate:` block: tasks.<task>.gate.<key>
TASK_GATE_KEYS: dict[tuple[str, str], str] = {
    ("outside_change", AT_MOST): "max_outside_change",
    ("inside_change", AT_LEAST): "min_inside_change",
    ("inside_change_cap", AT_MOST): "max_inside_change",
    ("face_iou", AT_LEAST): "min_face_iou",
    ("skin_detail_ratio", AT_MOST): "max_skin_detail_ratio",
    ("ocr_ned", AT_LEAST): "min_ocr_ned",
    ("ocr_word_accuracy", AT_LEAST): "min_word_accuracy",
    ("colour_toward_ring", AT_LEAST): "min_colour_toward_ring",
    ("edge_density_excess", AT_MOST): "max_edge_density_excess",
    ("edge_f1", AT_LEAST): "min_edge_f1",
    ("image_change", AT_LEAST): "min_change",
    ("hue_error_deg", AT_MOST): "max_hue_error_deg",
    ("target_saturation", AT_LEAST): "min_saturation",
    ("shading_correlation", AT_LEAST): "min_shading_correlation",
    ("detail_correlation", AT_MOST): "max_detail_correlation",
    ("background_change", AT_MOST): "max_background_change",  # motion: the background stays
    ("background_change", AT_LEAST): "min_background_change",  # background: it is replaced
    ("camera_motion", AT_MOST): "max_camera_motion",
    ("subject_motion", AT_LEAST): "min_subject_motion",
    ("mask_fraction", AT_MOST): "max_mask_fraction",
    ("frame_similarity", AT_LEAST): "min_frame_similarity",
    ("subject_change", AT_MOST): "max_subject_change",
    ("background_structure", AT_MOST): "max_background_structure",
    ("subject_fraction", AT_LEAST): "min_subject_fraction",
    ("subject_fraction_max", AT_MOST): "max_subject_fraction",
    ("structure_similarity", AT_MOST): "max_structure_similarity",
}

# the limit lives in common_gates.limits (or .model), overridable per task in common_gates.per_task
COMMON_GATE_KEYS: dict[str, str] = {
    "target_min_side": "min_side",
    "target_std": "min_target_std",
    "target_changed": "min_changed_fraction",
    "shift": "max_shift",
    "sharpness_ratio": "min_sharpness_ratio",
    "noise_increase": "max_noise_increase",
    "blockiness_increase": "max_blockiness_increase",
    "edge_agreement": "min_edge_agreement",
    "structure_agreement": "min_structure",
    "inside_sharpness_ratio": "min_inside_sharpness_ratio",
    "inside_noise_increase": "max_inside_noise_increase",
    "inside_colour_noise_increase": "max_inside_colour_noise_increase",
    "inside_blockiness_increase": "max_inside_blockiness_increase",
    "inside_edge_crispness": "min_inside_edge_crispness",
    "outside_window_change": "max_window_change",
    "mask_fit": "min_mask_fit",
}
MODEL_GATE_KEYS: dict[str, str] = {
    "dino_similarity": "min_dino",
    "dino_noop": "max_dino",
    "clip_image_similarity": "min_clip_image",
    "clip_direction": "min_clip_direction",
}

# yes/no checks (a zero threshold): nothing to fit
YES_NO_GATES = ("target_size_mismatch", "subject_mask_fallback")

# the tone gate names its checks by statistic: `<statistic>_up|_down` reads min_shift.<statistic>,
# `<statistic>_grey` reads max_grey_chroma
TONE_TASK = "tone_transformation"
TONE_SHIFT_SUFFIXES = ("_up", "_down")
TONE_GREY_SUFFIX = "_grey"


@dataclass(frozen=True)
class LimitKey:
    """Where a gate's limit is set: `path` is the nested key a config layer writes, e.g.
    ("tasks", "color_alteration", "gate", "max_hue_error_deg"). `per_kind` is true for the common
    pixel gates, whose limits common_gates.per_kind may override for one kind of edit."""

    path: tuple[str, ...]
    per_kind: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def name(self) -> str:
        return self.path[-1]


def limit_key(task: str, gate: str, direction: str) -> LimitKey | None:
    """The config key of `gate`'s limit on a row of `task`, or None for a yes/no check or a gate
    this table does not know."""
    if gate in YES_NO_GATES:
        return None
    if gate in COMMON_GATE_KEYS:
        return LimitKey(("common_gates", "per_task", task, COMMON_GATE_KEYS[gate]), per_kind=True)
    if gate in MODEL_GATE_KEYS:
        return LimitKey(("common_gates", "per_task", task, MODEL_GATE_KEYS[gate]))
    if (gate, direction) in TASK_GATE_KEYS:
        return LimitKey(("tasks", task, "gate", TASK_GATE_KEYS[(gate, direction)]))
    if task == TONE_TASK:
        if gate.endswith(TONE_GREY_SUFFIX) and direction == AT_MOST:
            return LimitKey(("tasks", task, "gate", "max_grey_chroma"))
        for suffix in TONE_SHIFT_SUFFIXES:
            if gate.endswith(suffix) and direction == AT_LEAST:
                return LimitKey(("tasks", task, "gate", "min_shift", gate[: -len(suffix)]))
    return None


def default_of(schema: dict, key: LimitKey):
    """The key's default in the config schema; a per-task common limit defaults to the shared one
    in common_gates.limits or common_gates.model. KeyError when the schema has no such key."""
    if key.path[:2] == ("common_gates", "per_task"):
        gates = schema["common_gates"]
        return {**gates["limits"], **gates["model"]}[key.name]
    node = schema
    for part in key.path:
        node = node[part]
    return node


def edit_kind(task: str, edit: dict) -> str | None:
    """The kind of edit common_gates.per_kind is keyed by: the edit's `kind` (a tone edit's
    `restore`), or a restyle's style (a pixel-art target is blocky on purpose, a watercolour soft)."""
    return edit.get("kind") or (edit.get("style") if task == "style_transfer" else None)
