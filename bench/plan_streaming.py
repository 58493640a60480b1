"""Planning a run over many inputs: the streaming plan against earlier versions, each taken from
git: the list-everything way (`discover()` builds the list of every record, then one fsync'd file
per shard) and the first streaming plan, whose plan.json listed every shard. Today's rows also
plan the way `run` does, in a background thread (`plan_stream.BackgroundPlan`): the seconds until
the first plan file is written are the seconds until the run can hand its first shard to Ray
(Ray itself is not started; `run` starts it meanwhile).

Both plan the same synthetic folder of KEYS empty .jpg files (DIRS folders; planning never opens
a file) with `pipeline.engine.runner._plan`, each in a fresh Python process, and report the
planning seconds and the process's peak RSS (ru_maxrss), with the RSS after imports beside it.
A manifest (CSV) of the same keys is planned by the streaming code too. Today's code is taken
from git (`git archive REV`) into a temporary folder.

    .venv/bin/python bench/plan_streaming.py [--keys 1000000] [--dirs 1000] [--work DIR]
        [--before REV=WAY ...] [--out docs/bench/plan_streaming.json]
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
    REPO,
    RESULTS,
    machine,
    quiet_environment,
    table,
    write_json,
)

quiet_environment()

# run in a fresh interpreter with PYTHONPATH at the tree under test; prints one JSON line
PLAN_ONCE = r"""
import json, resource, sys, time
from pathlib import Path
from pipeline.core import config
from pipeline.core.run_dir import RunDir
from pipeline.engine import runner
source, out = sys.argv[1], sys.argv[2]
cfg = config.load_config("cpu", overrides=[{"input": {"path": source}, "run": {"out": out, "progress": False}}])
after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
plan = runner._plan(RunDir(Path(out)), cfg, log=lambda m: None)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
files = sum(1 for _ in Path(out, "plan").iterdir())
shards = plan["shard_count"] if "shard_count" in plan else len(plan["shards"])
print(json.dumps({"inputs": plan["inputs"], "shards": shards, "plan_files": files, "plan_json_bytes": Path(out, "plan", "plan.json").stat().st_size,
                  "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1), "rss_after_imports_mb": round(after_imports, 1)}))
"""

# the plan as `run` lists it: in a thread, the run free to start on the first plan file
PLAN_OVERLAPPED = r"""
import json, resource, sys, time
from functools import partial
from pathlib import Path
from pipeline.core import config
from pipeline.core.run_dir import RunDir
from pipeline.engine import runner
from pipeline.engine.plan_stream import BackgroundPlan
source, out = sys.argv[1], sys.argv[2]
cfg = config.load_config("cpu", overrides=[{"input": {"path": source}, "run": {"out": out, "progress": False}}])
after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
background = BackgroundPlan(partial(runner._list_into_plan, RunDir(Path(out)), cfg)).start()
background.wait(0)
first = time.perf_counter() - start
plan = background.result()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
files = sum(1 for _ in Path(out, "plan").iterdir())
print(json.dumps({"inputs": plan["inputs"], "shards": plan["shard_count"], "plan_files": files, "plan_json_bytes": Path(out, "plan", "plan.json").stat().st_size,
                  "first_shard_runnable_s": round(first, 2), "seconds": round(seconds, 2), "peak_rss_mb": round(peak, 1),
                  "rss_after_imports_mb": round(after_imports, 1)}))
"""


# the list-everything plan, and the streaming plan whose plan.json listed every shard
DEFAULT_BEFORE = ["fed640f805a15746fc852395cc3be1d1b292455f=list, then a file per shard",
                  "20f4abe1cc4c2b96b1cec021cdd8ba0e2031c00a=streaming, plan.json lists every shard"]
NOW = "streaming, plan.json holds the counts"
OVERLAPPED = "streaming in a thread, the run starting on the first plan file"


def make_keys(root: Path, keys: int, dirs: int) -> Path:
    """KEYS empty .jpg files in DIRS folders, and a CSV manifest of them; kept for reruns."""
    done = root / f".made-{keys}-{dirs}"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    folder = root / "photos"
    per_dir = -(-keys // dirs)
    root.mkdir(parents=True)
    with open(root / "manifest.csv", "w") as manifest:
        manifest.write("uri\n")
        for d in range(dirs):
            sub = folder / f"{d:05d}"
            sub.mkdir(parents=True)
            for i in range(d * per_dir, min(keys, (d + 1) * per_dir)):
                name = f"{d:05d}/{i:08d}.jpg"
                os.close(os.open(folder / name, os.O_CREAT | os.O_WRONLY))
                manifest.write(f"photos/{name}\n")
    done.touch()
    return root


def baseline_tree(rev: str, into: Path) -> Path:
    """Today's code: the packages at `rev`, unpacked from git."""
    archive = subprocess.run(["git", "archive", rev, "pipeline", "stages", "tasks", "filters", "configs"], cwd=REPO,
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def plan_once(tree: Path, source: Path, out: Path, script: str = PLAN_ONCE) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", script, str(source), str(out)], cwd=tree, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"planning failed in {tree}:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--dirs", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "plan-streaming-bench")
    parser.add_argument("--before", action="append", metavar="REV=WAY", default=None,
                        help="an earlier version to plan with, and what to call it (repeatable; default: the two below)")
    parser.add_argument("--out", type=Path, default=RESULTS / "plan_streaming.json")
    args = parser.parse_args()
    before = [item.split("=", 1) for item in (args.before or DEFAULT_BEFORE)]
    start = time.perf_counter()
    data = make_keys(args.work / "inputs", args.keys, args.dirs)
    made_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        trees = [(f"{way} ({rev[:8]})", baseline_tree(rev, Path(tmp) / f"before-{n}")) for n, (rev, way) in enumerate(before)]
        plan_once(REPO, data / "photos", Path(tmp) / "warm")  # the same warm directory cache for every row
        rows = [
            *({"way": way, "input": "folder", **plan_once(tree, data / "photos", Path(tmp) / "run")} for way, tree in trees),
            {"way": NOW, "input": "folder", **plan_once(REPO, data / "photos", Path(tmp) / "run")},
            {"way": NOW, "input": "manifest.csv", **plan_once(REPO, data / "manifest.csv", Path(tmp) / "run")},
            {"way": OVERLAPPED, "input": "folder", **plan_once(REPO, data / "photos", Path(tmp) / "run", PLAN_OVERLAPPED)},
            {"way": OVERLAPPED, "input": "manifest.csv", **plan_once(REPO, data / "manifest.csv", Path(tmp) / "run", PLAN_OVERLAPPED)},
        ]
    columns = ["way", "input", "inputs", "shards", "plan_files", "plan_json_bytes", "first_shard_runnable_s", "seconds", "peak_rss_mb",
               "rss_after_imports_mb"]
    print(f"{args.keys:,} keys in {args.dirs} folders (made or found in {made_s:.0f}s)")
    print(table(columns, [[row.get(c, "") for c in columns] for row in rows]))
    write_json(args.out, {"keys": args.keys, "dirs": args.dirs, "before": dict(before), "machine": machine(), "rows": rows,
                          "note": "peak_rss_mb: ru_maxrss of the planning process (imports included); "
                                  "rss_after_imports_mb: the same before planning; first_shard_runnable_s: from the start of "
                                  "the listing until its first plan file is written, when `run` can hand the first shard to Ray "
                                  "(the auto shard size first reads 961 records ahead)"})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
