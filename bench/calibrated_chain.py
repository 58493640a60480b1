"""Calibrated chain: synthetic stages of known cost through the real engine, against the bound
their costs allow.

Each configuration is a chain of 5 synthetic stages with one fan-out (one input row becomes K
candidates with their own sample ids, as a task's proposal step makes them), run by
`run_pipeline(cfg, task_stages=chain)` on N tiny PNGs as the task tone_transformation, so the real
stage list (decode, split, the chain, common gates, judge, shard writer), Ray Data plan, runner and
writer all run.

  cpu   Ray with 2 CPUs (the engine starts it from ray.num_cpus); every synthetic stage burns a
        set number of CPU ms per row (a spin on time.thread_time: CPU work, not a sleep) and runs
        as Ray tasks of one CPU each.
  cpu_light  the same chain with num_cpus 0.25 per stage, what the real light stages ask for
        (Ray Data then may fuse them with stages of equal resources, the shard writer's actor too).
        bound (rows/s) = cores / CPU-seconds per input x K, where CPU-seconds per input sums the
        synthetic stages (pre-fan-out stages once, the rest K times) and, in a second figure, the
        engine's own stages on these rows (decode, split, common gates, judge: measured here in
        one process on the same tiny rows).
  gpu   Ray with 2 CPUs and 8 logical GPUs (started here; the engine's init_ray joins it). The
        "GPU" stages are actor pools (uses_model=True) that hold whole GPUs and take a set time
        per batch (a sleep: the CPU is free while a device works).
        bound (rows/s) = the slowest stage's capacity: concurrency x batch / seconds per batch
        (pre-fan-out stages x K), or the CPU bound of the light work if that is lower.

Achieved: candidate rows over the run's time after Ray was ready (fill and drain included), and
over the steady part (rows committed between the first and the last shard commit; it can read
above the bound when much of that work was done before the first commit). Each synthetic stage
records when it finished each batch and the batch's size: a per-stage timeline (first and last
batch, rows/s between) and, for the "GPU" stages, the mean batch fill. The CPU of the driver and
every Ray process, and the Ray Data operators (fused stages) seen, come from psutil.

    .venv/bin/python bench/calibrated_chain.py [--configs cpu cpu_light gpu] [--inputs-cpu 400] [--inputs-gpu 240]
        [--out docs/bench/calibrated_chain.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import RESULTS, CpuSampler, load_note, machine, make_tiny_inputs, quiet_environment, table, write_json  # noqa: E402
from pipeline.core import schema  # noqa: E402
from pipeline.core.rows import record_stage  # noqa: E402
from pipeline.core.stage import Resources, Row, Stage  # noqa: E402

quiet_environment()

TASK = "tone_transformation"


def burn_cpu(seconds: float) -> None:
    """Spin until this thread has used `seconds` of CPU (waiting for a core does not count)."""
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for _ in range(200):
            x += 1


def _chain_step(row: Row, name: str) -> None:
    """The stages a row passed, in order, in its `edit` column (it reaches the shard)."""
    edit = schema.loads(row.get("edit"))
    edit.setdefault("chain", []).append(name)
    row["edit"] = schema.dumps(edit)


class BusyStage(Stage):
    """`ms` of CPU per row; `fans_out=k` makes k candidates of every row (the proposal step)."""

    tasks = (TASK,)

    def __init__(self, name: str, ms: float, fan_out: int = 0, num_cpus: float = 1.0, batch_size: int = 8, finish: bool = False):
        self.name = name
        self.ms = float(ms)
        self.k = int(fan_out)
        self.fans_out = self.k > 0
        self.finish = finish
        self.resources = Resources(num_cpus=num_cpus, batch_size=batch_size)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        from stages.candidates import new_candidate

        out: list[Row] = []
        for row in rows:
            start = time.thread_time()
            made = [new_candidate(row, TASK, i) for i in range(self.k)] if self.fans_out else [row]
            for i, cand in enumerate(made):
                _chain_step(cand, self.name)
                if self.fans_out:
                    edit = schema.loads(cand["edit"])
                    edit["index"] = i
                    cand["edit"] = schema.dumps(edit)
                if self.finish:
                    finish_row(cand)
            burn_cpu(max(0.0, self.ms / 1000 - (time.thread_time() - start)))
            out.extend(made)
        done = round(time.time(), 3)
        for row in out:
            record_stage(row, self.name, batch=len(rows), at=done)
        return out


def finish_row(row: Row) -> None:
    """A target the gates can judge: the source, inverted (what a render step leaves)."""
    from pipeline.core.image_io import decode_image, encode_image

    rgb = decode_image(row["source_image"]["bytes"])
    row["target_image"] = schema.image_value(encode_image(255 - rgb))
    row["instruction_en"] = row["instruction_zh"] = "synthetic"


class DeviceStage(Stage):
    """A stand-in for a model on an accelerator: an actor pool holding `num_gpus` each, `seconds`
    per batch however full (the CPU idles meanwhile)."""

    tasks = (TASK,)
    uses_model = True

    def __init__(self, name: str, seconds_per_batch: float, batch_size: int, concurrency: int, num_gpus: float, num_cpus: float = 0.1, finish: bool = False):
        self.name = name
        self.seconds = float(seconds_per_batch)
        self.finish = finish
        self.resources = Resources(num_cpus=num_cpus, num_gpus=num_gpus, batch_size=batch_size, concurrency=concurrency)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        time.sleep(self.seconds)
        done = round(time.time(), 3)
        for row in rows:
            _chain_step(row, self.name)
            record_stage(row, self.name, batch=len(rows), at=done)
            if self.finish:
                finish_row(row)
        return rows


# -- the two configurations -------------------------------------------------------------------------

FAN_OUT = 4


def cpu_chain(scale: float = 1.0, num_cpus: float = 1.0) -> list[Stage]:
    """num_cpus 1: each task holds a core; 0.25: what the real light stages ask for."""
    return [
        BusyStage("prep", 20 * scale, num_cpus=num_cpus),
        BusyStage("propose", 2 * scale, fan_out=FAN_OUT, num_cpus=num_cpus),
        BusyStage("render", 15 * scale, num_cpus=num_cpus),
        BusyStage("refine", 10 * scale, num_cpus=num_cpus),
        BusyStage("finish", 3 * scale, finish=True, num_cpus=num_cpus),
    ]


def gpu_chain(scale: float = 1.0) -> list[Stage]:
    # 2 + 2 + 3 + 1 = 8 GPUs held
    return [
        DeviceStage("detect", 0.2 * scale, batch_size=8, concurrency=2, num_gpus=1.0),
        BusyStage("propose", 1, fan_out=FAN_OUT, num_cpus=0.25),
        DeviceStage("segment", 0.1 * scale, batch_size=8, concurrency=2, num_gpus=1.0),
        DeviceStage("generate", 0.5 * scale, batch_size=4, concurrency=3, num_gpus=1.0),
        DeviceStage("verify", 0.2 * scale, batch_size=16, concurrency=1, num_gpus=1.0, finish=True),
    ]


def stage_rows_per_input(chain: list[Stage]) -> list[int]:
    """How many rows of each input reach each stage (1 before the fan-out, K from it on)."""
    out, k = [], 1
    for stage in chain:
        out.append(k)
        if stage.fans_out:
            k *= getattr(stage, "k", 1)
    return out


def candidates_per_input(chain: list[Stage]) -> int:
    k = 1
    for stage in chain:
        if stage.fans_out:
            k *= getattr(stage, "k", 1)
    return k


def engine_stage_cpu_s(cfg: dict, folder: Path, chain: list[Stage], sample: int = 24) -> float:
    """CPU seconds per input that the engine's own stages (decode, split, common gates, judge)
    spend on these rows, measured in this process with the same stage objects a run builds.
    The synthetic stages' own CPU burn is taken out."""
    from pipeline.core.inputs import discover
    from pipeline.engine.stage_list import SplitByTask, WriteShards, build_stage_list
    from pipeline.engine.stage_runner import run_stage

    sim = [BusyStage(s.name, 0, fan_out=getattr(s, "k", 0), finish=getattr(s, "finish", False)) for s in chain]
    stages = build_stage_list(cfg, sim)
    records = discover(cfg["input"])[:sample]
    rows = [
        {"sample_id": "", "task": "", "status": schema.PENDING, "source_uri": r["uri"], "license": None, "_shard": 0, "_input": schema.dumps({**r, "index": i})}
        for i, r in enumerate(records)
    ]
    spent = 0.0
    for stage in stages:
        if isinstance(stage, WriteShards):
            continue
        start = time.process_time()
        if isinstance(stage, SplitByTask):
            rows = stage.process_batch(rows)
        else:
            stage.setup()
            rows = run_stage(stage, rows)
        if stage not in sim:
            spent += time.process_time() - start
    return spent / max(1, len(records))


def bound(chain: list[Stage], cores: float, engine_cpu_s: float) -> dict[str, Any]:
    k = candidates_per_input(chain)
    per_stage = []
    cpu_s = 0.0
    for stage, n in zip(chain, stage_rows_per_input(chain)):
        res = stage.resources
        if stage.uses_model:
            cap_rows = res.concurrency * res.batch_size / stage.seconds  # rows of this stage per s
            per_stage.append({"stage": stage.name, "kind": "device", "rows_per_input": n, "capacity_rows_s": round(cap_rows, 2), "capacity_out_rows_s": round(cap_rows * k / n, 2)})
        else:
            cpu_s += n * stage.ms / 1000
            per_stage.append({"stage": stage.name, "kind": "cpu", "rows_per_input": n, "cpu_ms_per_row": stage.ms})
    cpu_bound = cores / cpu_s * k if cpu_s else float("inf")
    cpu_bound_all = cores / (cpu_s + engine_cpu_s) * k
    device = [s["capacity_out_rows_s"] for s in per_stage if s["kind"] == "device"]
    device_bound = min(device) if device else float("inf")
    return {
        "candidates_per_input": k,
        "stages": per_stage,
        "cpu_s_per_input_synthetic": round(cpu_s, 4),
        "cpu_s_per_input_engine_stages": round(engine_cpu_s, 4),
        "cpu_bound_rows_s": None if cpu_bound == float("inf") else round(cpu_bound, 2),
        "cpu_bound_with_engine_stages_rows_s": round(cpu_bound_all, 2),
        "device_bound_rows_s": None if device_bound == float("inf") else round(device_bound, 2),
        "bound_rows_s": round(min(cpu_bound, device_bound), 2),
        "bound_with_engine_stages_rows_s": round(min(cpu_bound_all, device_bound), 2),
    }


def base_config(folder: Path, out: Path, num_cpus: int, shard_size: int | None) -> dict:
    from pipeline.core import config

    run = {"tasks": [TASK], "out": str(out), "progress": False, "report": False}
    if shard_size:
        run["shard_size"] = shard_size
    # one light writer: the 8 "GPU" actors hold 0.8 of the 2 CPUs, and the engine needs a whole one free
    ray = {"num_cpus": num_cpus, "writers": 1, "writer_cpus": 0.1}
    return config.load_config("cpu", overrides=[{"run": run, "input": {"path": str(folder)}, "ray": ray, "decode": {"min_side": 32}}])


def start_ray(num_cpus: int, num_gpus: int) -> None:
    """A local Ray on loopback with logical GPUs (no config key declares them); the engine's
    init_ray then finds it initialised and joins it."""
    import logging

    from pipeline.engine.ray_runtime import prepare_environment

    prepare_environment(None)
    import ray

    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)


def read_rows(run_dir: Path) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for folder in ("candidates", "errors"):
        for path in sorted((run_dir / folder).glob("*.parquet")):
            rows += pq.read_table(path, columns=["sample_id", "source_uri", "status", "reason", "edit", "provenance"]).to_pylist()
    return rows


def run_config(name: str, chain: list[Stage], inputs: int, num_cpus: int, num_gpus: int, shard_size: int | None, work: Path) -> dict[str, Any]:
    from pipeline.postrun.finish import run_pipeline

    folder = make_tiny_inputs(work / f"in-{name}", inputs)
    out = work / f"run-{name}"
    cfg = base_config(folder, out, num_cpus, shard_size)
    engine_cpu = engine_stage_cpu_s(cfg, folder, chain)
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if num_gpus:
        start_ray(num_cpus, num_gpus)  # else the engine starts Ray from ray.num_cpus
    t0 = time.perf_counter()
    with CpuSampler(every=0.5) as sampler:
        result = run_pipeline(cfg, log=lambda m: None, task_stages=chain)
        wall = time.perf_counter() - t0
    ray.shutdown()

    stats = result.stats
    rows = read_rows(result.run_dir)
    cands = [r for r in rows if r["status"] in schema.CANDIDATE_STATUSES]
    commits = sorted((json.loads(p.read_text()) for p in (result.run_dir / "stats" / "shards").glob("*.json")), key=lambda r: r["committed_at"])
    t_commits = [c["committed_at"] - stats["started_at"] for c in commits]
    ray_ready = stats.get("ray_ready_s") or 0.0
    end_s = t_commits[-1] if t_commits else stats["seconds"]
    achieved = len(cands) / max(1e-9, end_s - ray_ready)
    steady = None
    if len(commits) >= 3:
        later = sum(sum(c["counts"].get("ok", 0) + c["counts"].get("rejected", 0) for c in rec["tasks"].values()) for rec in commits[1:])
        steady = later / max(1e-9, t_commits[-1] - t_commits[0])
    fills, timeline = {}, []
    provs = [schema.loads(r["provenance"]).get("stages", {}) for r in cands]
    for stage in chain:
        info = [p.get(stage.name, {}) for p in provs]
        sizes = [i["batch"] for i in info if i.get("batch")]
        ats = sorted(i["at"] - stats["started_at"] for i in info if i.get("at"))
        if stage.uses_model and sizes:
            fills[stage.name] = {"mean_batch": round(statistics.mean(sizes), 2), "batch_size": stage.resources.batch_size, "fill": round(statistics.mean(sizes) / stage.resources.batch_size, 3)}
        if ats:
            # when the stage finished its first and its last batch (seconds since the run started),
            # and its rate in between, in candidate rows per second
            span = ats[-1] - ats[0]
            timeline.append({"stage": stage.name, "first_s": round(ats[0], 1), "last_s": round(ats[-1], 1), "rows_s": round(len(ats) / span, 1) if span > 0 else None})
    b = bound(chain, num_cpus, engine_cpu)
    return {
        "config": name,
        "inputs": inputs,
        "ray": {"num_cpus": num_cpus, "num_gpus": num_gpus, **(stats.get("ray") or {})},
        "shard_size": cfg["run"]["shard_size"],
        "shards": len(commits),
        "candidate_rows": len(cands),
        "rows_by_status": {s: sum(1 for r in rows if r["status"] == s) for s in sorted({r["status"] for r in rows})},
        "expected_candidates": inputs * b["candidates_per_input"],
        "wall_s": round(wall, 2),
        "ray_ready_s": ray_ready,
        "last_commit_s": round(end_s, 2),
        "first_commit_s": round(t_commits[0], 2) if t_commits else None,
        "achieved_rows_s": round(achieved, 2),
        "steady_rows_s": None if steady is None else round(steady, 2),
        "bound": b,
        "achieved_over_bound": round(achieved / b["bound_rows_s"], 3),
        "steady_over_bound": None if steady is None else round(steady / b["bound_rows_s"], 3),
        "achieved_over_bound_with_engine_stages": round(achieved / b["bound_with_engine_stages_rows_s"], 3),
        "batch_fill": fills,
        "stage_timeline": timeline,
        "cpu_s_all_processes": round(sampler.used(), 1),
        "cpu_s_by_process": sampler.by_role(),
        "max_busy_ray_workers": sampler.max_busy_workers,
        "ray_worker_processes": sampler.processes("ray workers"),
        "ray_data_operators": sampler.fused_operators(),
        "chain": [{"name": s.name, "class": type(s).__name__, **s.resources.__dict__} for s in chain],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", nargs="+", default=["cpu", "cpu_light", "gpu"], choices=["cpu", "cpu_light", "gpu"],
        help="cpu: CPU stages of one core each; cpu_light: the same at num_cpus 0.25, as the real light stages; gpu: 8 logical GPUs",
    )
    parser.add_argument("--inputs-cpu", type=int, default=400)
    parser.add_argument("--inputs-gpu", type=int, default=240)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every synthetic cost")
    parser.add_argument("--shard-size", type=int, default=None, help="run.shard_size (default: the config's)")
    parser.add_argument("--out", default=str(RESULTS / "calibrated_chain.json"))
    args = parser.parse_args()

    before = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        for name in args.configs:
            print(f"{name}: running ({time.strftime('%H:%M:%S')}) ...", file=sys.stderr)
            if name == "cpu":
                results.append(run_config("cpu", cpu_chain(args.scale), args.inputs_cpu, 2, 0, args.shard_size, Path(tmp)))
            elif name == "cpu_light":
                results.append(run_config("cpu_light", cpu_chain(args.scale, 0.25), args.inputs_cpu, 2, 0, args.shard_size, Path(tmp)))
            else:
                results.append(run_config("gpu", gpu_chain(args.scale), args.inputs_gpu, 2, 8, args.shard_size, Path(tmp)))
    payload = {"benchmark": "calibrated_chain", "fan_out": FAN_OUT, "scale": args.scale, "results": results, "machine_before": before, "machine_after": machine(), "load": load_note(before)}

    print(f"\nCalibrated chain, 5 synthetic stages, fan-out {FAN_OUT}; {payload['load']}")
    rows = []
    for r in results:
        b = r["bound"]
        rows.append(
            [
                r["config"],
                r["inputs"],
                r["candidate_rows"],
                r["ray_ready_s"],
                r["last_commit_s"],
                r["achieved_rows_s"],
                r["steady_rows_s"],
                b["bound_rows_s"],
                r["achieved_over_bound"],
                r["steady_over_bound"],
                b["bound_with_engine_stages_rows_s"],
                r["achieved_over_bound_with_engine_stages"],
            ]
        )
    print(table(["config", "inputs", "cands", "ray ready s", "end s", "rows/s", "steady rows/s", "bound", "ach/bound", "steady/bound", "bound+eng", "ach/bound+eng"], rows))
    for r in results:
        b = r["bound"]
        caps = ", ".join(
            f"{s['stage']} {s['capacity_out_rows_s']}/s" if s["kind"] == "device" else f"{s['stage']} {s['cpu_ms_per_row']}ms x{s['rows_per_input']}" for s in b["stages"]
        )
        print(
            f"  {r['config']}: {caps}; synthetic CPU {b['cpu_s_per_input_synthetic'] * 1000:.0f} ms/input, engine stages "
            f"{b['cpu_s_per_input_engine_stages'] * 1000:.1f} ms/input; batch fill {json.dumps({k: v['fill'] for k, v in r['batch_fill'].items()})}"
        )
        print(f"  {r['config']}: CPU {r['cpu_s_all_processes']} s {r['cpu_s_by_process']}; {r['ray_worker_processes']} Ray worker processes, at most {r['max_busy_ray_workers']} busy at once")
        print(f"  {r['config']}: first/last commit {r['first_commit_s']}/{r['last_commit_s']} s over {r['shards']} shards; stages (first batch done s, last s, rows/s between): "
              + ", ".join(f"{t['stage']} {t['first_s']}-{t['last_s']} ({t['rows_s']}/s)" for t in r["stage_timeline"]))
        print(f"  {r['config']}: Ray Data operators: " + " | ".join(r["ray_data_operators"]))
        if r["candidate_rows"] != r["expected_candidates"]:
            print(f"  WARNING {r['config']}: {r['candidate_rows']} candidates, expected {r['expected_candidates']}: {r['rows_by_status']}")
    print(f"wrote {write_json(Path(args.out), payload)}")


if __name__ == "__main__":
    main()
