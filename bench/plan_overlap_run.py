"""A real run whose listing is slow: does the first shard commit before the listing ends?

PHOTOS photos made from the bundled sample photos (`make_photo_inputs`), listed with a pause
before each record (as a slow store or a folder of tars lists), run through `pipeline.engine.
runner.run_shards` on an embedded Ray (cpu profile, one task). Reports, from the run's start:
Ray ready, the first commit, the listing's end and the run's end, and the driver's peak RSS.

    .venv/bin/python bench/plan_overlap_run.py [--photos 200] [--pause-ms 100] [--task tone]
        [--out docs/bench/plan_overlap_run.json]
"""

from __future__ import annotations

import argparse
import shutil
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
    parser.add_argument("--pause-ms", type=float, default=100.0, help="before each listed record")
    parser.add_argument("--task", default="tone")
    parser.add_argument("--shard-size", type=int, default=4, help="auto reads 961 records ahead, all of a run this small")
    parser.add_argument("--out", type=Path, default=RESULTS / "plan_overlap_run.json")
    args = parser.parse_args()

    from pipeline.core import config
    from pipeline.core.task_names import parse_tasks
    from pipeline.engine import runner

    real = runner.iter_records

    def slow_listing(spec, io):
        for record in real(spec, io):
            time.sleep(args.pause_ms / 1000)
            yield record

    runner.iter_records = slow_listing
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        make_photo_inputs(photos, args.photos, size=512)
        out = Path(tmp) / "run"
        cfg = config.load_config("cpu", overrides=[
            {"input": {"path": str(photos)}, "run": {"out": str(out), "progress": False, "tasks": parse_tasks(args.task)}},
            config.parse_set(f"run.shard_size={args.shard_size}"), config.parse_set("decode.working_size=256"),
        ])
        load = machine()
        start = time.perf_counter()
        result = runner.run_shards(cfg, log=lambda m: print(m, file=sys.stderr))
        wall = round(time.perf_counter() - start, 2)
        shutil.rmtree(out, ignore_errors=True)
    stats = result.stats
    row = {"inputs": result.manifest["inputs"], "shards": stats["shards_committed"], "pause_ms": args.pause_ms,
           "overlapped": stats.get("plan_overlapped", False), "ray_ready_s": stats["ray_ready_s"],
           "first_commit_s": stats["first_commit_s"], "listing_end_s": stats["plan_done_s"], "run_s": wall,
           "driver_peak_rss_mb": stats["driver_peak_rss_mb"]}
    columns = list(row)
    print(table(columns, [[row[c] for c in columns]]))
    write_json(args.out, {"task": args.task, "shard_size": args.shard_size, "machine": load, "row": row,
                          "note": "seconds from the run's start; listing_end_s: plan.json written; before this version "
                                  "Ray started only after it, so no shard could commit before listing_end_s"})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
