"""Driver memory against input count: the driver streams, so its peak RSS should not grow with
the number of inputs. Runs the colour task on N small generated images for each N, each in a
fresh driver process, and reports the driver's peak RSS (the driver alone, not Ray's workers).

    python bench/driver_memory.py [--sizes 1000 5000] [--json bench/results/driver_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def make_inputs(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(count):
        rgb = np.full((64, 80, 3), 70, np.uint8)
        rgb[16:48, 20:60] = rng.integers(100, 255, size=3, dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:06d}.png")
        images.append({"id": i, "file_name": f"{i:06d}.png"})
        annotations.append({"image_id": i, "category_id": 1, "bbox": [18, 14, 44, 36]})
    ann = folder.parent / f"ann-{count}.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}))
    return ann


def run_once(count: int, work: Path) -> dict:
    folder = work / f"in-{count}"
    ann = make_inputs(folder, count)
    out = work / f"run-{count}"
    cmd = [
        sys.executable, "-m", "pipeline", "run", "--task", "color", "--input", str(folder), "--annotations", str(ann),
        "--out", str(out), "--no-progress", "--set", "decode.working_size=64", "--set", "run.shard_size=64",
        "--set", "tasks.color_alteration.colors_per_object=1", "--set", "decode.min_side=32",
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run with {count} inputs failed:\n{done.stderr[-3000:]}")
    stats = json.loads((out / "stats" / "run.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        "inputs": count,
        "rows": sum(manifest["rows"].values()),
        "wall_s": round(time.perf_counter() - start, 1),
        "driver_peak_rss_mb": stats["driver_peak_rss_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--json", default=str(REPO / "bench" / "results" / "driver_memory.json"))
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_once(n, Path(tmp)) for n in args.sizes]
    base = results[0]["driver_peak_rss_mb"]
    print(f"{'inputs':>8} {'rows':>8} {'wall s':>8} {'driver peak RSS MB':>20} {'vs first':>9}")
    for r in results:
        print(f"{r['inputs']:>8} {r['rows']:>8} {r['wall_s']:>8} {r['driver_peak_rss_mb']:>20} {r['driver_peak_rss_mb'] / base:>9.2f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"benchmark": "driver_memory", "results": results}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
