"""`python -m pipeline plan --calibrate`: time each model stage of the configured tasks on this
machine's GPU and write the cost table (configs/stage_costs.yaml) that `plan` and gpu.auto_pools
size the pools from.

The stages are the run's own (`stage_list.build_stage_list`: each model stage built by
`ModelStage.from_config`), run in order by `stage_runner.run_stage` without Ray, so every model
stage gets the rows its recipe would give it: a few inputs (the bundled samples unless
`input.path` says otherwise), decoded at the working size (upscaled if smaller), through
grounding, masks, proposals and generators. One model is loaded at a time (`setup`), warmed on
one batch, timed over all the rows that reach it, and unloaded. A row's time is the stage's wall
time, with the GPU synchronised, divided by the rows it took: GPU-seconds per row with a whole GPU."""

from __future__ import annotations

import copy
import gc
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

import yaml

from pipeline.core import schema
from pipeline.core.inputs import discover
from pipeline.core.stage import Row
from pipeline.core.task_names import VIDEO_TASKS
from pipeline.engine.gpu_plan import cost_key
from pipeline.engine.ray_plan import input_row
from pipeline.engine.stage_list import WriteShards, build_stage_list
from pipeline.engine.stage_runner import applies, run_stage
from stages.models.tiny import ensure_tiny


class NoGpu(RuntimeError):
    pass


def require_cuda() -> str:
    """The GPU's name; NoGpu when torch sees no CUDA device."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        raise NoGpu("plan --calibrate times the model stages on a GPU, and torch is not installed") from None
    if not torch.cuda.is_available():
        raise NoGpu(
            "plan --calibrate times the model stages on a GPU, and this machine has no CUDA device "
            "(torch.cuda.is_available() is false). Run it on a GPU node, or edit the cost table "
            "(gpu.cost_table, configs/stage_costs.yaml) by hand; `plan` without --calibrate needs no GPU."
        )
    return torch.cuda.get_device_name(0)


def _sync() -> None:
    import torch

    torch.cuda.synchronize()


def _free() -> None:
    import torch

    gc.collect()
    torch.cuda.empty_cache()


def start_rows(cfg: dict[str, Any], inputs: int) -> list[Row]:
    """The first `inputs` images (and one clip when a video task runs), as the Ray plan's first
    rows look (ray_plan.start_rows), numbered as a shard's inputs are."""
    records = discover(cfg["input"])
    images = [r for r in records if r["kind"] != "video"][:inputs]
    videos = [r for r in records if r["kind"] == "video"][:1] if any(t in VIDEO_TASKS for t in cfg["run"]["tasks"]) else []
    return [input_row({**record, "index": index}, 0) for index, record in enumerate(images + videos)]


def _batches(rows: list[Row], size: int) -> list[list[Row]]:
    size = max(1, size)
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def calibrate(cfg: dict[str, Any], inputs: int = 4, log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Seconds per row of each model stage of the configured tasks: {cost key: entry}."""
    device = require_cuda()
    cfg = copy.deepcopy(cfg)
    cfg["gpu"]["auto_pools"] = False  # one process, one model at a time: the plan's sizes do not matter
    cfg["decode"]["upscale"] = True  # every row at the working size
    if "sd3_controlnet" in cfg["model_stages"]:  # time each ControlNet on its own rows: the table costs them apart
        cfg["model_stages"]["sd3_controlnet"]["share_base"] = False
    stages = [s for s in build_stage_list(cfg) if not isinstance(s, WriteShards)]
    ensure_tiny(cfg, sorted({family for stage in stages for family in stage.loads}), log=log)  # as `run` does
    last_model = max((i for i, s in enumerate(stages) if s.uses_model), default=-1)
    rows = start_rows(cfg, inputs)
    measured: dict[str, dict[str, Any]] = {}
    for stage in stages[: last_model + 1]:
        if not stage.uses_model:
            stage.setup()
            rows = [out for batch in _batches(rows, stage.resources.batch_size or 8) for out in run_stage(stage, batch)]
            continue
        active = [r for r in rows if applies(stage, r)]
        key = cost_key(stage)
        if not active:
            log(f"{stage.name}: no row reached it; not measured")
            continue
        worker = copy.copy(stage)
        start = time.perf_counter()
        worker.setup()
        load_s = time.perf_counter() - start
        batch = stage.resources.batch_size
        run_stage(worker, [dict(r) for r in active[:batch]])  # warm-up: kernels, caches, allocator
        _sync()
        start = time.perf_counter()
        out = [o for b in _batches(rows, batch) for o in run_stage(worker, b)]
        _sync()
        seconds = (time.perf_counter() - start) / len(active)
        failed = [r for r in out if r.get("status") == schema.ERROR and str(r.get("reason") or "").startswith(f"{stage.name}:")]
        rows = out
        del worker
        _free()
        if failed:  # a row that failed fast is no measurement
            log(f"{stage.name} ({key}): {len(failed)} of {len(active)} rows failed, not measured: {failed[0]['reason']}")
            continue
        params = cfg["model_stages"].get(stage.model.section, {}) if hasattr(type(stage), "model") else {}
        entry: dict[str, Any] = {"seconds_per_row": round(seconds, 4)}
        if params.get("steps"):
            entry["steps"] = int(params["steps"])
        entry["measured_on"] = device
        entry["source"] = (
            f"plan --calibrate {date.today().isoformat()}: {len(active)} rows at {cfg['decode']['working_size']} px, batch {batch}, "
            f"after one warm-up batch (load {load_s:.0f} s)"
        )
        if key in measured:  # the same weights at two points of the list: keep the slower
            entry = max(entry, measured[key], key=lambda e: e["seconds_per_row"])
        measured[key] = entry
        log(f"{stage.name} ({key}): {seconds:.4f} s per row over {len(active)} rows")
    return measured


def write_cost_table(path: str | Path, measured: dict[str, dict[str, Any]], cfg: dict[str, Any]) -> Path:
    """The measured entries over the table's others (an entry not measured now keeps its number)."""
    path = Path(path)
    old = yaml.safe_load(path.read_text()) if path.exists() else {}
    stages = dict((old or {}).get("stages") or {})
    stages.update(measured)
    header = (
        "# GPU-seconds per row of each model stage with a whole GPU, at the working size; read by `plan`\n"
        "# and gpu.auto_pools (pipeline/engine/gpu_plan.py). Written by `python -m pipeline plan --calibrate`.\n"
        "# Keys: the registry family for its own stage class, else the stage's name. Fields: seconds_per_row;\n"
        "# steps (it scales with the section's steps); measured_on (null: an estimate); source.\n"
    )
    body = yaml.safe_dump({"working_size": cfg["decode"]["working_size"], "stages": stages}, sort_keys=False, allow_unicode=True, width=200)
    path.write_text(header + body)
    return path
