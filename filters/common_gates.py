"""Gates every candidate passes after its own task's gate, whatever the task: the target is a
sane picture, it sits where the source does, it is as sharp and clean as the source, and it is
still the same scene.

A local edit (its row has a mask) is judged only on the region it had to keep, outside the
dilated mask, plus the local gates (filters/local_gates.py) and, where its task turns it on,
whether the mask follows the object's outline (filters/mask_fit.py); a whole-picture edit
(tone, style) over the whole picture, with limits that allow for what those edits legitimately
do (configs/filters/common_gates.yaml: per task, and per kind of edit, since a restoration's
source is the noisy or hazy one by design).

These are pixel statistics; on the gpu profile the model gates (filters/dino_similarity.py,
filters/clip_similarity.py) run beside them. Each row lists the gates that ran in
`scores["gates_ran"]` and the kind of evidence in `scores["gate_backend"]`."""

from __future__ import annotations

from typing import Any

import numpy as np

from filters import image_stats
from filters.edges import edge_f1
from filters.gate_limits import edit_kind
from filters.gate_stage import GateStage
from filters.gates import GateResult, record_gates
from filters.local_gates import local_gate_results
from filters.mask_change import dilate, touched_margin_px
from filters.mask_fit import mask_fit_results
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.stage import ModelStage, Resources, Row

PIXEL, MODEL = "pixel", "model"


def merged_limits(limits: dict, per_task: dict | None, per_kind: dict | None, task: str, kind: str | None) -> dict:
    """The defaults, then the task's own limits, then those of the edit's kind."""
    out = dict(limits)
    out.update((per_task or {}).get(task) or {})
    if kind:
        out.update((per_kind or {}).get(kind) or {})
    return out


def kept_region(shape: tuple[int, ...], mask: np.ndarray | None, margin_px: int) -> np.ndarray:
    """Where the source must survive: outside the mask grown by `margin_px`; the whole picture
    for a whole-picture edit (whose limits allow for what it may change there)."""
    if mask is None:
        return np.ones(shape[:2], bool)
    return ~dilate(mask, margin_px)


def sanity_results(source: np.ndarray, target: np.ndarray, limits: dict) -> list[GateResult]:
    results = [
        GateResult.at_most("target_size_mismatch", float(source.shape != target.shape), 0.0),
        GateResult.at_least("target_min_side", min(target.shape[:2]), limits["min_side"]),
    ]
    if limits.get("min_target_std") is not None:
        results.append(GateResult.at_least("target_std", image_stats.intensity_std(target), limits["min_target_std"]))
    if limits.get("min_changed_fraction") is not None and source.shape == target.shape:
        results.append(GateResult.at_least("target_changed", image_stats.changed_fraction(source, target), limits["min_changed_fraction"]))
    return results


def comparison_results(source: np.ndarray, target: np.ndarray, region: np.ndarray, limits: dict) -> list[GateResult]:
    """The gates that compare the pair over `region`; a gate whose limit is null is left out."""
    results: list[GateResult] = []

    def on(key: str) -> bool:
        return limits.get(key) is not None

    if on("max_shift"):
        shift, _response = image_stats.phase_shift(source, target, region)
        results.append(GateResult.at_most("shift", shift, limits["max_shift"]))
    if on("min_sharpness_ratio"):
        ratio = image_stats.sharpness(target, region) / max(image_stats.sharpness(source, region), 1e-6)
        results.append(GateResult.at_least("sharpness_ratio", ratio, limits["min_sharpness_ratio"]))
    if on("max_noise_increase"):
        added = image_stats.noise_sigma(target, region) - image_stats.noise_sigma(source, region)
        results.append(GateResult.at_most("noise_increase", added, limits["max_noise_increase"]))
    if on("max_blockiness_increase"):
        added = image_stats.blockiness(target, region) - image_stats.blockiness(source, region)
        results.append(GateResult.at_most("blockiness_increase", added, limits["max_blockiness_increase"]))
    if region.all():
        # a whole-picture edit may redraw every texture and tone: only its edges must stay put
        if on("min_edge_agreement"):
            results.append(GateResult.at_least("edge_agreement", edge_f1(source, target, int(limits["edge_tolerance_px"])), limits["min_edge_agreement"]))
    elif on("min_structure"):
        results.append(GateResult.at_least("structure_agreement", image_stats.structure_agreement(source, target, region), limits["min_structure"]))
    return results


def common_gate_results(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None, limits: dict, touched_px: int = 0) -> list[GateResult]:
    """Every common gate for one pair. A target of another size cannot be compared pixel by
    pixel: it gets the sanity gates only, and fails on its size."""
    results = sanity_results(source, target, limits)
    if source.shape != target.shape:
        return results
    region = kept_region(source.shape, mask, int(limits["mask_margin_px"]) + touched_px)
    results += comparison_results(source, target, region, limits)
    if mask is None:
        return results
    return results + local_gate_results(source, target, mask, region, limits) + mask_fit_results(source, mask, limits, touched_px)


def note_gates_ran(row: Row, names: list[str], backend: str) -> None:
    """Add `names` to the row's list of gates that ran; once a model gate ran, the row's
    evidence counts as the model's."""
    scores = schema.loads(row.get("scores"))
    ran = scores.setdefault("gates_ran", [])
    ran.extend(name for name in names if name not in ran)
    if backend == MODEL or scores.get("gate_backend") != MODEL:
        scores["gate_backend"] = backend
    row["scores"] = schema.dumps(scores)


class CommonGatesStage(GateStage):
    """Runs on every candidate after its task's gate: pending, ok and rejected rows alike (a
    rejected row keeps its verdict and gains the common gates' values)."""

    name = "common_gates"
    reads = ("status", "task", "source_image", "target_image", "mask?", "edit?", "provenance", "scores?")
    writes = ("scores", "status", "reason")
    resources = Resources(num_cpus=0.25, batch_size=16)
    accepts = (schema.PENDING, schema.OK, schema.REJECTED)

    def __init__(self, tasks: tuple[str, ...] | None = None, limits: dict | None = None, per_task: dict | None = None, per_kind: dict | None = None):
        self.tasks = tuple(tasks) if tasks is not None else None
        self.limits = dict(limits or {})
        self.per_task = dict(per_task or {})
        self.per_kind = dict(per_kind or {})

    @classmethod
    def from_config(cls, cfg: dict[str, Any], tasks: tuple[str, ...] | None = None) -> "CommonGatesStage":
        section = cfg["common_gates"]
        return cls(tasks, section["limits"], section["per_task"], section["per_kind"])

    def process_row(self, row: Row) -> Row:
        if row.get("status") not in self.accepts or not row.get("target_image") or not row.get("source_image"):
            return row
        source = decode_image(row["source_image"]["bytes"])
        target = decode_image(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"]) if row.get("mask") else None
        edit = schema.loads(row.get("edit"))
        limits = merged_limits(self.limits, self.per_task, self.per_kind, row["task"], edit_kind(row["task"], edit))
        results = common_gate_results(source, target, mask, limits, touched_margin_px(row))
        record_gates(row, results)
        note_gates_ran(row, [r.name for r in results], PIXEL)
        return row


class ModelGateStage(ModelStage):
    """What the model gates share: they take the same rows as the common gates, load their
    model once in `setup`, merge limits per task like them, and mark their rows' evidence as the
    model's. A subclass declares `model` and implements `load` and `gate_batch`."""

    accepts = CommonGatesStage.accepts

    def __init__(self, model_ref: str, tasks: tuple[str, ...] | None = None, limits: dict | None = None, per_task: dict | None = None, revision: str | None = None, resources: Resources | None = None):
        self.model_ref, self.revision = model_ref, revision
        self.tasks = tuple(tasks) if tasks is not None else None
        self.limits = dict(limits or {})
        self.per_task = dict(per_task or {})
        self.resources = resources or self.resources
        self.encoder = None

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs[cls.model.family]
        gates = cfg["common_gates"]
        return cls(ref, tasks, limits=gates["model"], per_task=gates["per_task"], revision=revision)

    def setup(self) -> None:
        self.encoder = self.load()

    def load(self) -> Any:
        raise NotImplementedError

    def limits_for(self, row: Row) -> dict:
        return merged_limits(self.limits, self.per_task, None, row["task"], None)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        if self.encoder is None:
            self.setup()
        active = [r for r in rows if r.get("status") in self.accepts and r.get("source_image") and r.get("target_image")]
        if active:
            sources = [decode_image(r["source_image"]["bytes"]) for r in active]
            targets = [decode_image(r["target_image"]["bytes"]) for r in active]
            for row, results in zip(active, self.gate_batch(active, sources, targets)):
                record_gates(row, results)
                note_gates_ran(row, [r.name for r in results], MODEL)
        return rows

    def gate_batch(self, rows: list[Row], sources: list[np.ndarray], targets: list[np.ndarray]) -> list[list[GateResult]]:
        raise NotImplementedError


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, D) arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)
