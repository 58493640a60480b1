"""A real run whose listing is slow: does the first shard commit before the listing ends?

PHOTOS photos made from the bundled sample photos (`make_photo_inputs`), listed with a pause
before each record (as a slow store or a folder of tars lists), run through `pipeline.engine.
runner.run_shards` on an embedded Ray (cpu profile, one task), twice, each in a fresh process:
as `run` does it, and waiting for the listing to end before the first shard (as before this
version, which also started Ray only then). Reports, from the run's start: Ray ready, the first
commit, the listing's end and the run's end, and the driver's peak RSS.

    .venv/bin/python bench/plan_overlap_run.py [--photos 200] [--pause-ms 300] [--task tone]
        [--out docs/bench/plan_overlap_run.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import (  # noqa: E402
    RESULTS,
    machine,
    make_photo_inputs,
    quiet_environment,
    table,
    write_json,
)

quiet_environment()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--pause-ms", type=float, default=300.0, help="before each listed record")
    parser.add_argument("--task", default="tone")
    parser.add_argument("--shard-size", type=int, default=4, help="auto reads 961 records ahead, all of a run this small")
    parser.add_argument("--out", type=Path, default=RESULTS / "plan_overlap_run.json")
    parser.add_argument("--mode", choices=MODES, help="run one mode in this process and print its row")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(one_run(args)))
        return 0
    load = machine()
    rows = []
    for mode in MODES:
        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--mode", mode], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        if done.returncode:
            raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    columns = list(rows[0])
    print(table(columns, [[row[c] for c in columns] for row in rows]))
    write_json(args.out, {"task": args.task, "shard_size": args.shard_size, "machine": load, "rows": rows,
                          "note": "seconds from the run's start; listing_end_s: plan.json written. wait for the listing: "
                                  "Ray starts at once, but no shard before the listing ended (before this version Ray "
                                  "itself started only then)"})
    print(f"wrote {args.out}")
    return 0


MODES = ("overlap", "wait for the listing")


def one_run(args) -> dict:
    from pipeline.core import config
    from pipeline.core.task_names import parse_tasks
    from pipeline.engine import runner

    real = runner.iter_records

    def slow_listing(spec, io):
        for record in real(spec, io):
            time.sleep(args.pause_ms / 1000)
            yield record

    runner.iter_records = slow_listing
    if args.mode != "overlap":
        runner.LISTING_GRACE_S = 1e9  # the listing's end, then the whole plan at once
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        make_photo_inputs(photos, args.photos, size=512)
        out = Path(tmp) / "run"
        cfg = config.load_config("cpu", overrides=[
            {"input": {"path": str(photos)}, "run": {"out": str(out), "progress": False, "tasks": parse_tasks(args.task)}},
            config.parse_set(f"run.shard_size={args.shard_size}"), config.parse_set("decode.working_size=256"),
        ])
        start = time.perf_counter()
        result = runner.run_shards(cfg, log=lambda m: print(m, file=sys.stderr))
        wall = round(time.perf_counter() - start, 2)
        shutil.rmtree(out, ignore_errors=True)
    stats = result.stats
    return {"mode": args.mode, "inputs": result.manifest["inputs"], "shards": stats["shards_committed"], "pause_ms": args.pause_ms,
            "ray_ready_s": stats["ray_ready_s"], "first_commit_s": stats["first_commit_s"], "listing_end_s": stats["plan_done_s"],
            "run_s": wall, "driver_peak_rss_mb": stats["driver_peak_rss_mb"]}


if __name__ == "__main__":
    raise SystemExit(main())
