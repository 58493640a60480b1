"""Naive vs streaming: the same stage objects, one input at a time in one process (no Ray), against
`python -m pipeline run` (the streaming Ray Data plan) on the same photos and config.

Inputs: N distinct photos of about SIZE px with COCO boxes, made offline and deterministically from
the bundled sample photos (crops, mirrors, scales; bench/bench_common.py). Tasks: a CPU mix
(default color,tone,style,remove), `decode.working_size=SIZE`, `run.report=false`.

naive      `build_stage_list(cfg)` built once, `setup()` once per stage; then for each input: its
           start row -> decode -> `SplitByTask.process_batch` -> every recipe/gate/judge stage
           through `stage_runner.run_stage` (in the stage's batch size) -> the engine's
           `ShardWriter` (the same Parquet and commit records as a run).
streaming  `python -m pipeline run ...` in a subprocess (a fresh driver, embedded Ray).

Reported: seconds of each, the speedup and its share of the ideal (speedup / CPUs Ray was given),
time to the first committed candidate and its share of the run (RUN/stats/run.json), the
committed-rows-over-time curve from the commit records (RUN/stats/shards/*.json `committed_at`;
plotted to docs/bench/commits_over_time.png, both modes), and the driver's peak RSS.

    .venv/bin/python bench/naive_vs_streaming.py [--inputs 24] [--size 1024] [--tasks color,tone,style,remove]
        [--shard-size N] [--num-cpus N] [--out docs/bench/naive_vs_streaming.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import REPO, RESULTS, CpuSampler, load_note, machine, make_photo_inputs, quiet_environment, table, write_json  # noqa: E402

quiet_environment()


def cli_args(args, folder: Path, ann: Path, out: Path) -> list[str]:
    sets = [f"decode.working_size={args.size}", "run.report=false"]
    if args.shard_size:
        sets.append(f"run.shard_size={args.shard_size}")
    if args.num_cpus:
        sets.append(f"ray.num_cpus={args.num_cpus}")
    cmd = ["--task", args.tasks, "--input", str(folder), "--annotations", str(ann), "--out", str(out), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def config_for(args, folder: Path, ann: Path, out: Path) -> dict:
    """The same resolved config the CLI builds from `cli_args` (checked against the run's hash)."""
    from pipeline.core import config
    from pipeline.core.task_names import parse_tasks

    flags = {"run": {"tasks": parse_tasks(args.tasks), "out": str(out), "progress": False}, "input": {"path": str(folder), "annotations": str(ann)}}
    sets = [f"decode.working_size={args.size}", "run.report=false"]
    if args.shard_size:
        sets.append(f"run.shard_size={args.shard_size}")
    if args.num_cpus:
        sets.append(f"ray.num_cpus={args.num_cpus}")
    return config.load_config("cpu", overrides=[flags, *(config.parse_set(s) for s in sets)])


def commit_curve(run_root: Path, started_at: float) -> list[dict]:
    """One point per committed shard, in commit order: seconds since start, rows and candidate
    rows committed so far."""
    points, rows, cands = [], 0, 0
    records = [json.loads(p.read_text()) for p in (run_root / "stats" / "shards").glob("*.json")]
    for rec in sorted(records, key=lambda r: r["committed_at"]):
        rows += rec["rows"]
        cands += sum(c.get("ok", 0) + c.get("rejected", 0) for t in rec.get("tasks", {}).values() for c in [t["counts"]])
        points.append({"shard": rec["shard"], "t_s": round(rec["committed_at"] - started_at, 2), "rows": rows, "candidates": cands})
    return points


def run_naive(cfg: dict, out: Path, part: tuple[int, int] = (0, 1)) -> dict:
    """Every input alone through the run's own stage objects, in this process; `part` (i, n)
    takes every n-th input from the i-th."""
    from pipeline.core import config as config_mod
    from pipeline.core.inputs import discover
    from pipeline.core.run_dir import RunDir
    from pipeline.engine.ray_plan import start_rows
    from pipeline.engine.runner import shard_size_for
    from pipeline.engine.shard_writer import ShardWriter
    from pipeline.engine.stage_list import SplitByTask, WriteShards, build_stage_list
    from pipeline.engine.stage_runner import run_stage

    t_setup = time.perf_counter()
    cpu0 = time.process_time()
    stages = build_stage_list(cfg)
    for stage in stages:
        if not isinstance(stage, (SplitByTask, WriteShards)):
            stage.setup()
    run = RunDir(out)
    records = discover(cfg["input"])[part[0] :: part[1]]
    meta = {"config_hash": config_mod.identity_hash(cfg), "tasks": cfg["run"]["tasks"], "profile": cfg["profile"], "created_at": time.time()}
    plan = run.write_plan(records, shard_size_for(cfg["run"]["shard_size"], len(records)), meta)
    units = {shard: inputs * len(cfg["run"]["tasks"]) for shard, inputs in run.shards(plan)}
    writer = ShardWriter(str(out), units)
    setup_s = time.perf_counter() - t_setup

    started_at = time.time()
    t0 = time.perf_counter()
    first_candidate_s = None
    per_input = []
    rows_out = 0
    for shard in sorted(units):
        for start in start_rows(RunDir(out), shard):
            t_in = time.perf_counter()
            rows = [start]
            for stage in stages:
                if isinstance(stage, SplitByTask):
                    rows = stage.process_batch(rows)
                elif isinstance(stage, WriteShards):
                    progress = writer.add(rows)
                    rows_out += len(rows)
                    if first_candidate_s is None and any(p["committed"] and p["candidates"] for p in progress):
                        first_candidate_s = time.perf_counter() - t0
                else:
                    # as in the engine: a model stage in its batch size, a light one over the input's rows
                    size = max(1, stage.resources.batch_size if stage.uses_model else len(rows))
                    done = []
                    for i in range(0, len(rows), size):
                        done += run_stage(stage, rows[i : i + size])
                    rows = done
            per_input.append(round(time.perf_counter() - t_in, 3))
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "setup_s": round(setup_s, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "first_candidate_s": None if first_candidate_s is None else round(first_candidate_s, 2),
        "rows": rows_out,
        "per_input_s": per_input,
        "commits": commit_curve(out, started_at),
        "config_hash": meta["config_hash"],
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_bound(args, folder: Path, ann: Path, work: Path, processes: int) -> dict:
    """What the cores allow with no engine at all: `processes` naive loops side by side, each on
    its own share of the inputs. Their wall time is the bound the streaming run is held to."""
    procs = []
    t0 = time.perf_counter()
    for i in range(processes):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--naive-part", f"{i}/{processes}", "--inputs", str(args.inputs),
               "--size", str(args.size), "--tasks", args.tasks, "--keep", str(work), "--out", str(work / f"bound-{i}.json")]
        if args.shard_size:
            cmd += ["--shard-size", str(args.shard_size)]
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a naive part failed:\n{err[-2000:]}")
    wall = time.perf_counter() - t0
    parts = [json.loads((work / f"bound-{i}.json").read_text()) for i in range(processes)]
    return {"processes": processes, "seconds": round(wall, 2), "part_seconds": [p["seconds"] for p in parts],
            "cpu_s": round(sum(p["cpu_s"] for p in parts), 1), "rows": sum(p["rows"] for p in parts)}


def run_streaming(args, folder: Path, ann: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "pipeline", "run", *cli_args(args, folder, ann, out)]
    parent_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, text=True)
        with CpuSampler(proc.pid, every=0.5) as sampler:
            code = proc.wait()
        wall = time.perf_counter() - t0
        if code != 0:
            err.seek(0)
            raise SystemExit(f"pipeline run failed ({code}):\n{err.read()[-4000:]}")
    stats = json.loads((out / "stats" / "run.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    plan = json.loads((out / "plan" / "plan.json").read_text())
    commits = commit_curve(out, stats["started_at"])
    last_commit = stats["started_at"] + (commits[-1]["t_s"] if commits else 0.0)
    return {
        "command": "python -m pipeline run " + " ".join(cmd[4:]),
        "wall_s": round(wall, 2),
        "seconds": stats["seconds"],
        "ray_ready_s": stats.get("ray_ready_s"),
        "first_candidate_s": stats.get("first_candidate_s"),
        "driver_peak_rss_mb": stats.get("driver_peak_rss_mb"),
        "driver_peak_rss_mb_sampled": sampler.root_peak_rss_mb,
        "driver_peak_uss_mb_sampled": sampler.root_peak_uss_mb,
        "bench_parent_peak_rss_mb_at_launch": parent_rss,
        "ray": stats.get("ray"),
        "rows": sum(manifest["rows"].values()),
        "rows_by_status": manifest["rows"],
        "commits": commits,
        "config_hash": plan["config_hash"],
        # the driver's memory while shards stream and commit, and after (selection, dedup, manifest)
        "driver_peak_until_last_commit": sampler.root_peak_between(0.0, last_commit),
        "driver_peak_after_last_commit": sampler.root_peak_between(last_commit, float("inf")),
        # driver and every Ray process it started, sampled every 0.5 s (a process that ends loses
        # at most its last half second)
        "cpu_s_all_processes": round(sampler.used(), 1),
        "cpu_s_by_process": sampler.by_role(),
        "max_busy_ray_workers": sampler.max_busy_workers,
        "ray_worker_processes": sampler.processes("ray workers"),
        "ray_data_operators": sampler.fused_operators(),
    }


def plot(naive: dict, streaming: dict, path: Path, title: str, before: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    curves = [
        ("streaming (pipeline run)", streaming, "-", "tab:blue"),
        ("naive (one input at a time)", naive, "--", "tab:orange"),
    ]
    if before:
        commit = before.get("machine_before", {}).get("engine", {}).get("commit", "before")
        curves.append((f"streaming before ({commit})", before["streaming"], ":", "tab:grey"))
    for label, res, style, color in curves:
        xs = [0.0] + [p["t_s"] for p in res["commits"]]
        ys = [0] + [p["rows"] for p in res["commits"]]
        ax.step(xs + [res["seconds"]], ys + [ys[-1]], where="post", linestyle=style, color=color, label=label)
        ax.plot(xs[1:], ys[1:], "o", color=color, ms=4)
    if streaming.get("ray_ready_s"):
        ax.axvline(streaming["ray_ready_s"], color="grey", lw=0.8, ls=":", label="streaming: Ray ready")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("rows committed (cumulative)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=24)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tasks", default="color,tone,style,remove")
    parser.add_argument("--shard-size", type=int, default=None, help="run.shard_size (default: the config's)")
    parser.add_argument("--num-cpus", type=int, default=None, help="ray.num_cpus for the streaming run (default: all cores)")
    parser.add_argument("--out", default=str(RESULTS / "naive_vs_streaming.json"))
    parser.add_argument("--plot", default=str(RESULTS / "commits_over_time.png"))
    parser.add_argument("--keep", default=None, help="keep the inputs and both run folders here")
    parser.add_argument("--before", default=None, help="an earlier result JSON whose streaming curve the plot also draws")
    parser.add_argument("--no-bound", action="store_true", help="skip the side-by-side naive loops (the hardware bound)")
    parser.add_argument("--naive-part", default=None, help=argparse.SUPPRESS)  # I/N: one loop of the bound
    args = parser.parse_args()

    if args.naive_part:
        i, n = (int(x) for x in args.naive_part.split("/"))
        work = Path(args.keep)
        folder, ann = work / f"photos-{args.inputs}x{args.size}", work / f"photos-{args.inputs}x{args.size}.json"
        out = work / f"run-bound-{i}"
        Path(args.out).write_text(json.dumps(run_naive(config_for(args, folder, ann, out), out, (i, n))))
        return
    before = machine()
    with tempfile.TemporaryDirectory(prefix="bench-nvs-") as tmp:
        work = Path(args.keep or tmp)
        folder = work / f"photos-{args.inputs}x{args.size}"
        ann = make_photo_inputs(folder, args.inputs, args.size)
        naive_out, stream_out = work / "run-naive", work / "run-streaming"
        for path in (naive_out, stream_out):
            if path.exists():
                raise SystemExit(f"{path} exists: choose an empty --keep folder")
        cfg = config_for(args, folder, ann, naive_out)
        # streaming first, while this process is small: Linux keeps a process's peak RSS across
        # fork and exec, so a driver forked from a parent that had grown would report the parent's
        print(f"streaming: python -m pipeline run ... ({time.strftime('%H:%M:%S')})", file=sys.stderr)
        streaming = run_streaming(args, folder, ann, stream_out)
        print(f"naive: {args.inputs} inputs one at a time ... ({time.strftime('%H:%M:%S')})", file=sys.stderr)
        naive = run_naive(cfg, naive_out)
        cores = args.num_cpus or os.cpu_count() or 1
        bound = None
        if not args.no_bound and cores > 1:
            print(f"bound: {cores} naive loops side by side ... ({time.strftime('%H:%M:%S')})", file=sys.stderr)
            bound = run_bound(args, folder, ann, work, cores)
    after = machine()

    speedup = naive["seconds"] / streaming["seconds"]
    steady = streaming["seconds"] - (streaming["ray_ready_s"] or 0.0)
    speedup_steady = naive["seconds"] / steady if steady > 0 else None
    first = streaming["first_candidate_s"]
    result = {
        "benchmark": "naive_vs_streaming",
        "settings": {"inputs": args.inputs, "size": args.size, "tasks": args.tasks, "shard_size": cfg["run"]["shard_size"], "ray_cpus": cores},
        "same_config": naive["config_hash"] == streaming["config_hash"],
        "naive": naive,
        "streaming": streaming,
        "speedup": round(speedup, 3),
        "share_of_ideal": round(speedup / cores, 3),
        "speedup_after_ray_ready": None if speedup_steady is None else round(speedup_steady, 3),
        "first_candidate_share_of_run": None if first is None else round(first / streaming["seconds"], 3),
        "bound": bound,
        "bound_speedup": None if not bound else round(naive["seconds"] / bound["seconds"], 3),
        "share_of_bound": None if not bound else round(bound["seconds"] / streaming["seconds"], 3),
        "machine_before": before,
        "machine_after": after,
        "load": load_note(before),
    }
    rows = [
        ["naive, one process", naive["seconds"], None, naive["first_candidate_s"], None, naive["rows"], naive["process_peak_rss_mb"]],
        [
            "streaming, pipeline run",
            streaming["seconds"],
            streaming["ray_ready_s"],
            first,
            result["first_candidate_share_of_run"],
            streaming["rows"],
            streaming["driver_peak_rss_mb"],
        ],
    ]
    if bound:
        rows.append([f"bound: {bound['processes']} naive loops side by side", bound["seconds"], None, None, None, bound["rows"], None])
    print(
        f"\n{args.inputs} photos at {args.size} px, tasks {args.tasks}, shard_size {cfg['run']['shard_size']}, "
        f"{cores} CPUs; {result['load']}"
    )
    print(table(["mode", "seconds", "ray ready s", "1st commit w/ cand s", "share of run", "rows", "peak RSS MB"], rows))
    print(
        f"(peak RSS: naive = this process; streaming = the driver's stats/run.json figure, sampled peak "
        f"{streaming['driver_peak_rss_mb_sampled']} MB, of it private (USS) {streaming['driver_peak_uss_mb_sampled']} MB; "
        f"until the last commit {streaming['driver_peak_until_last_commit']}, after it (selection) {streaming['driver_peak_after_last_commit']}; Ray's workers not included)"
    )
    print(
        f"speedup {speedup:.2f}x = {result['share_of_ideal']:.0%} of the ideal {cores}x"
        + (f"; {speedup_steady:.2f}x counting from Ray ready" if speedup_steady else "")
        + (f"; the bound (no engine, {bound['processes']} loops) is {result['bound_speedup']:.2f}x, "
           f"the run reaches {result['share_of_bound']:.0%} of it" if bound else "")
    )
    print(f"naive setup (stage objects, not timed above) {naive['setup_s']}s; streaming wall incl. interpreter start {streaming['wall_s']}s")
    print(
        f"CPU: naive {naive['cpu_s']} s (its process); streaming {streaming['cpu_s_all_processes']} s (driver + Ray) "
        f"{streaming['cpu_s_by_process']}; {streaming['ray_worker_processes']} Ray worker processes, at most {streaming['max_busy_ray_workers']} busy at once"
    )
    print("Ray Data operators (a->b: fused into one task/actor): " + " | ".join(streaming["ray_data_operators"]))
    print("commits (streaming): " + ", ".join(f"{p['t_s']}s:{p['rows']}" for p in streaming["commits"]))
    print("commits (naive):     " + ", ".join(f"{p['t_s']}s:{p['rows']}" for p in naive["commits"]))
    if not result["same_config"]:
        print("WARNING: the naive config hash differs from the run's", file=sys.stderr)
    earlier = json.loads(Path(args.before).read_text()) if args.before else None
    plot(naive, streaming, Path(args.plot), f"{args.inputs} photos x {args.tasks} at {args.size} px, {cores} CPUs", earlier)
    result["plot"] = str(Path(args.plot).resolve().relative_to(REPO)) if Path(args.plot).resolve().is_relative_to(REPO) else args.plot
    print(f"wrote {write_json(Path(args.out), result)} and {args.plot}")


if __name__ == "__main__":
    main()
