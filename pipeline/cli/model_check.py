"""`models check`: load every model a profile uses and run one small batch through its stage, and
the models that run outside the pipeline's stages (the verify baselines) through their own calls."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pipeline.core import models, schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.engine.gpu_plan import model_stage_classes
from pipeline.engine.stage_runner import run_stage
from stages.models.tiny import ensure_tiny


@dataclass
class CheckResult:
    family: str
    ok: bool
    seconds: float
    detail: str


def smoke_row(size: int) -> dict[str, Any]:
    """A row shaped as the pipeline makes it: a photo-like gradient, one object, its mask, a
    depth map and an edit prompt, so every stage finds what it reads."""
    from stages.models.zoedepth import store_depth

    yy, xx = np.mgrid[0:size, 0:size]
    rgb = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    q = size // 4
    rgb[q : 3 * q, q : 3 * q] = (200, 40, 40)
    mask = np.zeros((size, size), np.uint8)
    mask[q : 3 * q, q : 3 * q] = 255
    box = [float(q), float(q), float(2 * q), float(2 * q)]
    row = {
        "sample_id": "models-check", "task": "color_alteration", "status": schema.PENDING,
        "_unit": "0:0:color_alteration", "_unit_rows": 1, "width": size, "height": size,
        "source_image": schema.image_value(encode_image(rgb)), "mask": schema.image_value(encode_image(mask)),
        "target_image": schema.image_value(encode_image(rgb[:, ::-1].copy())),  # what the similarity gates compare
        "edit": schema.dumps({"prompt": "a blue square on a gradient"}),
        "_work": schema.dumps({"phrases": ["square"], "objects": [{"label": "square", "bbox": box}], "selected": [{"label": "square", "bbox": box}]}),
    }
    store_depth(row, 1.0 + (yy + xx).astype(np.float32) / size)
    return row


def timed_check(family: str, call: Callable[[], str | None]) -> CheckResult:
    """Runs one check: `call` returns None when the model works, or why it does not."""
    start = time.perf_counter()
    try:
        reason = call()
    except Exception as exc:  # a model that fails to load is a result, not a crash
        reason = f"{type(exc).__name__}: {exc}"[:300]
    return CheckResult(family, reason is None, time.perf_counter() - start, reason or "")


def check_family(family: str, cfg: dict[str, Any], size: int) -> CheckResult:
    def through_stage() -> str | None:
        stage = model_stage_classes()[family].from_config(cfg, None)
        stage.setup()
        out = run_stage(stage, [smoke_row(size)])
        bad = [r for r in out if r["status"] == schema.ERROR]  # a gate's verdict is fine; a failure is not
        return bad[0]["reason"] if bad else None

    return timed_check(family, through_stage)


def check_kontext(cfg: dict[str, Any], size: int) -> None:
    """FLUX.1 Kontext is not a pipeline stage: `verify --editor flux-kontext` calls it directly."""
    from editor.kontext import kontext_edit, load_kontext

    ref, revision = models.resolve(cfg, "flux_kontext")
    row = smoke_row(size)
    source = decode_image(row["source_image"]["bytes"])
    generate_px = cfg["editor"]["kontext"]["generate_px"]
    out = kontext_edit(load_kontext(ref, revision), [source], ["make the red square blue"], size, steps=2, generate_px=generate_px)
    if len(out) != 1 or out[0].shape != (size, size, 3) or out[0].dtype != np.uint8:
        raise ValueError(f"flux_kontext returned {[(o.shape, o.dtype) for o in out]}, not one {size}x{size} uint8 picture")


# registry families that no stage loads, each with the call that exercises it
NON_STAGE_CHECKS = {"flux_kontext": check_kontext}


def check_non_stage(family: str, cfg: dict[str, Any], size: int) -> CheckResult:
    return timed_check(family, lambda: NON_STAGE_CHECKS[family](cfg, size))


def check_profile(cfg: dict[str, Any], log=print) -> list[CheckResult]:
    """One line per registry key; the SD3.5 base is checked inside each ControlNet stage."""
    size = 64 if cfg["models"]["source"] == "tiny" else 512
    ensure_tiny(cfg, list(models.registry()), log=log)
    results: dict[str, CheckResult] = {}
    for family, stage_class in model_stage_classes().items():
        result = check_family(family, cfg, size)
        for loaded in stage_class.model.loads:
            if loaded not in results or not result.ok:
                results[loaded] = CheckResult(loaded, result.ok, result.seconds, result.detail)
        log(result_line(result, cfg))
    if "sd3_5" in results:
        r = results["sd3_5"]
        log(f"{'sd3_5':18} {'ok' if r.ok else 'FAILED':7} {'':>6}   (loaded by the ControlNet stages)")
    for family in NON_STAGE_CHECKS:
        results[family] = check_non_stage(family, cfg, size)
        log(result_line(results[family], cfg))
    return list(results.values())


def result_line(result: CheckResult, cfg: dict[str, Any]) -> str:
    line = f"{result.family:18} {'ok' if result.ok else 'FAILED':7} {result.seconds:6.1f}s  {models.resolve(cfg, result.family)[0]}"
    return line + (f"  {result.detail}" if result.detail else "")
