"""Planning a run over many inputs: the streaming plan against today's way (the code at the
branch point: `discover()` builds the list of every record, then one fsync'd file per shard).

Both plan the same synthetic folder of KEYS empty .jpg files (DIRS folders; planning never opens
a file) with `pipeline.engine.runner._plan`, each in a fresh Python process, and report the
planning seconds and the process's peak RSS (ru_maxrss), with the RSS after imports beside it.
A manifest (CSV) of the same keys is planned by the streaming code too. Today's code is taken
from git (`git archive REV`) into a temporary folder.

    .venv/bin/python bench/plan_streaming.py [--keys 1000000] [--dirs 1000] [--work DIR]
        [--baseline-rev REV (default: the merge base with main)] [--out docs/bench/plan_streaming.json]
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
print(json.dumps({"inputs": plan["inputs"], "shards": len(plan["shards"]), "plan_files": files, "seconds": round(seconds, 2),
                  "peak_rss_mb": round(peak, 1), "rss_after_imports_mb": round(after_imports, 1)}))
"""


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


def plan_once(tree: Path, source: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", PLAN_ONCE, str(source), str(out)], cwd=tree, env=env,
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
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "plan_streaming.json")
    args = parser.parse_args()
    rev = args.baseline_rev or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=REPO, capture_output=True,
                                              text=True, check=True).stdout.strip()
    start = time.perf_counter()
    data = make_keys(args.work / "inputs", args.keys, args.dirs)
    made_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(rev, Path(tmp) / "baseline")
        plan_once(REPO, data / "photos", Path(tmp) / "warm")  # the same warm directory cache for every row
        rows = [
            {"way": f"today ({rev[:8]}): list, then a file per shard", "input": "folder",
             **plan_once(base, data / "photos", Path(tmp) / "run")},
            {"way": "streaming", "input": "folder", **plan_once(REPO, data / "photos", Path(tmp) / "run")},
            {"way": "streaming", "input": "manifest.csv", **plan_once(REPO, data / "manifest.csv", Path(tmp) / "run")},
        ]
    columns = ["way", "input", "inputs", "shards", "plan_files", "seconds", "peak_rss_mb", "rss_after_imports_mb"]
    print(f"{args.keys:,} keys in {args.dirs} folders (made or found in {made_s:.0f}s)")
    print(table(columns, [[row[c] for c in columns] for row in rows]))
    write_json(args.out, {"keys": args.keys, "dirs": args.dirs, "baseline_rev": rev, "machine": machine(), "rows": rows,
                          "note": "peak_rss_mb: ru_maxrss of the planning process (imports included); "
                                  "rss_after_imports_mb: the same before planning"})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
