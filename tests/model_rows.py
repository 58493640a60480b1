"""What the model-adapter tests share: rows shaped as the pipeline hands them to a stage, the
Arrow round trip a Ray actor puts them through, test pictures, and a spy on pipeline calls."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import encode_png
from pipeline.engine.stage_runner import run_stage


def pipeline_row(
    rgb: np.ndarray,
    index: int = 0,
    task: str = "color_alteration",
    *,
    sample_id: str | None = None,
    work: dict[str, Any] | None = None,
    mask: np.ndarray | None = None,
    edit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pending row for input `index` and `task`: the PNG source in its struct column, the unit
    bookkeeping, `_work` JSON, and optionally a mask and an edit. The sample id is `s<index>`
    unless given."""
    height, width = rgb.shape[:2]
    key = f"img{index}.png"
    return {
        "sample_id": sample_id or f"s{index}",
        "task": task,
        "status": schema.PENDING,
        "source_image": schema.image_value(encode_png(rgb), key),
        "mask": schema.image_value(encode_png(mask)) if mask is not None else None,
        "edit": schema.dumps(edit) if edit is not None else None,
        "width": width,
        "height": height,
        "_shard": 0,
        "_unit": f"0:{index}:{task}",
        "_unit_rows": 1,
        "_input": schema.dumps({"index": index, "key": key, "uri": key}),
        "_work": schema.dumps(work or {}),
    }


def through_arrow(rows: list[dict]) -> list[dict]:
    """Rows as a Ray actor receives and returns them: through the Arrow work schema."""
    return schema.rows_to_table(rows).to_pylist()


def run_through_arrow(stage, rows: list[dict]) -> dict[str, dict]:
    """The stage run on Arrow-shaped rows, its output round-tripped too, by sample id."""
    return {r["sample_id"]: r for r in through_arrow(run_stage(stage, through_arrow(rows)))}


def noise_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def gradient_photo(height: int, width: int) -> np.ndarray:
    """Smooth ramps plus a fine pattern: a picture whose every pixel differs from its neighbours."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, (xx * yy) % 256], axis=2).astype(np.uint8)


def record_pipeline_calls(pipe, monkeypatch) -> list[dict]:
    """The keyword arguments of every call to `pipe`'s class, recorded while the calls still run."""
    calls: list[dict] = []
    pipeline_class = type(pipe)
    original = pipeline_class.__call__

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_class, "__call__", recording)
    return calls


def run_tiny_canny_recipe(task: str, cfg: dict[str, Any], photo: np.ndarray, monkeypatch):
    """A task's tiny recipe over one 64 x 96 crop of `photo`, with every call to its canny
    ControlNet recorded: (controlnet stage, calls, rows, source)."""
    from stages.models.sd3_controlnet import SD3ControlNetStage
    from stages.models.tiny import ensure_tiny
    from tasks import build_stages

    stages = build_stages(task, cfg)
    ensure_tiny(cfg, sorted({f for s in stages for f in s.loads}), log=lambda m: None)
    controlnet = next(s for s in stages if isinstance(s, SD3ControlNetStage))
    assert controlnet.control == "canny"
    controlnet.setup()
    calls = record_pipeline_calls(controlnet.pipe, monkeypatch)
    source = np.ascontiguousarray(photo[:64, :96])
    row = pipeline_row(source, 0, task)
    row["source_sha256"] = "ab" * 32
    rows = [row]
    for stage in stages:
        rows = run_stage(stage, rows)
    return controlnet, calls, rows, source
