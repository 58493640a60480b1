"""A profile's whole stage list on one GPU, in one process: how busy the GPU is, the GPU-seconds
each model stage spends per candidate of each task, and the peak memory.

    python -m bench.device_pipeline --profile tiny --device cuda     # the device script's run
    python -m bench.device_pipeline --profile tiny --inputs 2       # CPU: the same code, no GPU numbers

Ray does not travel to the device machines (its wheel is larger than what a call carries), so the
stages run here in the engine's order, stage by stage over every row at once: a model stage in
its own batch size, as its actor pool would take rows from many inputs; a light stage over each
input's rows, as the engine's fused task does. The GPU's utilisation is sampled with nvidia-smi
every 200 ms. GPU-seconds per candidate are the model stages' wall time, shared out over the rows
each batch held (`provenance.stages.<stage>.seconds`), summed per task over its candidates."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import RESULTS, make_photo_inputs, quiet_environment, table, write_json  # noqa: E402

quiet_environment()


class GpuSampler:
    """nvidia-smi's utilisation and memory every 200 ms; nothing where there is no nvidia-smi."""

    def __init__(self):
        self.samples: list[tuple[float, float, float]] = []  # (time, util %, memory MiB)
        self.proc = None
        try:
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
        except FileNotFoundError:
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                util, mem = (float(x) for x in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.perf_counter(), util, mem))

    def window(self, start: float, end: float) -> dict[str, float] | None:
        picked = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not picked:
            return None
        return {"busy_share": round(sum(u for u, _ in picked) / len(picked) / 100, 3), "memory_mib_max": max(m for _, m in picked)}

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()


def _config(args, folder: Path, ann: Path) -> dict[str, Any]:
    from pipeline.core import config
    from pipeline.core.task_names import parse_tasks

    sets = [
        f"input.path={folder}", f"input.annotations={ann}", f"decode.working_size={args.size}",
        f"model_stages.flux_fill.steps={args.steps}", f"model_stages.sd3_controlnet.steps={args.steps}",
    ]
    overrides = [{"run": {"tasks": parse_tasks(args.tasks), "progress": False, "report": False}}]
    return config.load_config(args.profile, overrides=overrides + [config.parse_set(s) for s in sets])


def _inputs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    from pipeline.core.inputs import discover
    from pipeline.engine.ray_plan import input_row

    return [input_row({**record, "index": i}, 0) for i, record in enumerate(discover(cfg["input"]))]  # as the plan numbers them


def _run_stages(stages, rows, sampler: GpuSampler, cuda) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from pipeline.engine.stage_list import SplitByTask, WriteShards
    from pipeline.engine.stage_runner import run_stage

    report = []
    for stage in stages:
        if isinstance(stage, WriteShards):
            break
        if not isinstance(stage, SplitByTask):
            stage.setup()  # loading is not part of a stage's time per row
        if cuda:
            cuda.synchronize()
            cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        if isinstance(stage, SplitByTask):
            rows = stage.process_batch(rows)
        elif stage.uses_model:
            size = max(1, stage.resources.batch_size)
            rows = [out for i in range(0, len(rows), size) for out in run_stage(stage, rows[i : i + size])]
        else:
            by_input: dict[str, list] = defaultdict(list)
            for row in rows:
                by_input[row["source_uri"]].append(row)
            rows = [out for group in by_input.values() for out in run_stage(stage, group)]
        if cuda:
            cuda.synchronize()
        end = time.perf_counter()
        entry = {"stage": stage.name, "model": stage.uses_model, "rows_out": len(rows), "seconds": round(end - start, 3)}
        if cuda:
            entry["peak_allocated_gib"] = round(cuda.max_memory_allocated() / 2**30, 2)
        entry.update(sampler.window(start, end) or {})
        report.append(entry)
    return rows, report


def _per_candidate(rows, model_stages: set[str]) -> dict[str, dict[str, float]]:
    """task -> model stage -> GPU-seconds per candidate (the stage's time on all the task's rows,
    over the task's candidates)."""
    from pipeline.core import schema

    seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    candidates: dict[str, int] = defaultdict(int)
    for row in rows:
        candidates[row["task"]] += row["status"] in schema.CANDIDATE_STATUSES
        for name, info in schema.loads(row.get("provenance")).get("stages", {}).items():
            if name in model_stages:
                seconds[row["task"]][name] += float(info.get("seconds", 0.0))
    return {
        task: {"candidates": n, **{s: round(v / max(1, n), 3) for s, v in seconds[task].items()}}
        for task, n in candidates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--tasks", default="remove,color,style")
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--size", type=int, default=512, help="decode.working_size")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps of Flux-Fill and SD3.5")
    parser.add_argument("--work", default="/tmp/device-pipeline")
    parser.add_argument("--out", default=str(RESULTS / "device_pipeline.json"))
    args = parser.parse_args()

    import torch

    from pipeline.engine.runner import ensure_models
    from pipeline.engine.stage_list import build_stage_list

    cuda = torch.cuda if torch.cuda.is_available() else None
    work = Path(args.work)
    folder = work / f"photos-{args.inputs}x{args.size}"
    ann = make_photo_inputs(folder, args.inputs, args.size)
    cfg = _config(args, folder, ann)
    stages = build_stage_list(cfg)
    ensure_models(cfg, stages, log=lambda m: print(m, file=sys.stderr))
    sampler = GpuSampler()
    start = time.perf_counter()
    try:
        rows, report = _run_stages(stages, _inputs(cfg), sampler, cuda)
    finally:
        sampler.stop()
    wall = time.perf_counter() - start
    whole = sampler.window(start, start + wall)
    model_stages = {s.name for s in stages if s.uses_model}
    result = {
        "benchmark": "device_pipeline",
        "settings": vars(args),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "wall_s": round(wall, 2),
        "gpu_busy_share": whole["busy_share"] if whole else None,
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "stages": report,
        "gpu_s_per_candidate": _per_candidate(rows, model_stages),
    }
    print(table(["stage", "model", "rows out", "s", "busy", "peak GiB"], [
        [e["stage"], "yes" if e["model"] else "", e["rows_out"], e["seconds"], e.get("busy_share"), e.get("peak_allocated_gib")] for e in report
    ]))
    print(table(["task", "candidates", *sorted(model_stages)], [
        [task, v["candidates"], *(v.get(s) for s in sorted(model_stages))] for task, v in sorted(result["gpu_s_per_candidate"].items())
    ]))
    print(f"wall {result['wall_s']} s, GPU busy {result['gpu_busy_share']}, peak {result['peak_allocated_gib']} GiB on {result['device']}")
    print(f"wrote {write_json(Path(args.out), result)}")


if __name__ == "__main__":
    main()
