"""Engine overhead per row at 1024 px: the CPU a row costs outside the stages' own work.

Rows: a real cpu-profile run (`run_pipeline`) of one task (default color) on 2 photos at
working_size 1024 (the offline photo variants of bench/bench_common.py), read back from its
Parquet, with the working columns a row carries between stages put back (its input record,
scratch JSON, one mask blob).

Components, each measured with time.process_time over repeated calls in this process:
  decode            the decode stage on one input (read, sha256, decode, resize, in-flight encode),
                    per input and its share per candidate row (candidates per input from the run)
  hand-offs         what a stage pays to read `source_image` (and the mask) and write `target_image`
                    in their in-flight form (NPY), and PNG where a picture is not in it
  png encode        the written form, made once per picture by the `png_encode` stage
  arrow hop         what the engine does around every stage call: `table.to_pylist()` in,
                    `schema.rows_to_table(rows)` out (a batch of 4 working rows, per row)
  runner            `stage_runner.run_stage` with a stage that does nothing (row copies, the
                    provenance record)
  record_stage      one provenance update (JSON load + dump of the row's provenance)
  shard write       `schema.to_output_table` + Parquet (zstd) + sha256, per row
How often a row meets each (stage hops, NPY and PNG decodes and encodes after the decode stage) is
counted on the same task's chain run in this process (numpy and PIL calls counted), so the total
per row is for that chain's length.

Whole engine: a chain of H no-op stages (after one stage that turns each input into K candidates
with 1024-px source, target and mask, and before one that ends the rows `skipped` so the common
gates, the same in both and the largest fixed cost, stay out) through the real engine against the
same chain with 0 no-op stages, on one Ray started once; the CPU of the driver and every Ray
process (sampled with psutil) is compared, giving CPU ms per row per stage hop as the engine really
runs it (Ray Data may fuse consecutive stages into one task; then a hop is an Arrow round trip).

    .venv/bin/python bench/engine_overhead.py [--task color] [--photos 12] [--hops 16] [--repeats 2]
        [--out docs/bench/engine_overhead.json]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_common import RESULTS, CpuSampler, load_note, machine, make_photo_inputs, quiet_environment, table, write_json  # noqa: E402
from pipeline.core import schema  # noqa: E402
from pipeline.core.stage import Resources, Row, Stage  # noqa: E402

quiet_environment()

SIZE = 1024


def cpu_ms(fn: Callable[[], Any], per: int = 1, min_s: float = 0.4, min_reps: int = 3) -> float:
    """Mean CPU ms per call of `fn`, divided by `per` (rows per call)."""
    fn()  # warm
    reps, start = 0, time.process_time()
    while reps < min_reps or time.process_time() - start < min_s:
        fn()
        reps += 1
    return (time.process_time() - start) * 1000 / reps / per


# -- rows from a real run -----------------------------------------------------------------------


def config_for(task: str, folder: Path, ann: Path, out: Path, **run: Any) -> dict:
    from pipeline.core import config
    from pipeline.core.task_names import parse_tasks

    flags = {
        "run": {"tasks": parse_tasks(task), "out": str(out), "progress": False, "report": False, **run},
        "input": {"path": str(folder), "annotations": str(ann)},
        "decode": {"working_size": SIZE},
        "ray": {"num_cpus": 2},
    }
    return config.load_config("cpu", overrides=[flags])


def real_rows(cfg: dict) -> tuple[list[Row], dict]:
    """Candidate rows of a real run, as working rows again (input record, scratch, one blob)."""
    import pyarrow.parquet as pq

    from pipeline.core.run_dir import RunDir
    from pipeline.postrun.finish import run_pipeline

    result = run_pipeline(cfg, log=lambda m: None)
    run = RunDir(result.run_dir)
    records = {r["uri"]: r for shard, _ in run.shards(run.read_plan()) for r in run.read_shard_inputs(shard)}
    rows = []
    for path in sorted(run.candidates.glob("*.parquet")):
        for i, row in enumerate(pq.read_table(path).to_pylist()):
            record = records[row["source_uri"]]
            row["_input"] = schema.dumps(record)
            row["_shard"], row["_unit"], row["_unit_rows"] = 0, f"0:{record['index']}:{row['task']}", 1
            row["_work"] = schema.dumps({"objects": record.get("objects"), "selected": [0]})
            if row.get("mask"):
                row["_blobs"] = [{"name": "mask:0", "data": row["mask"]["bytes"]}]
            rows.append(row)
    inputs = result.manifest["task_inputs"]
    return rows, {"candidates": len(rows), "inputs": sum(inputs.values()), "rows": result.manifest["rows"]}


MASK_MODES = ("1", "L", "I", "I;16", "F")


class _Counter:
    """Counts PNG decodes (PIL ImageFile.load with tiles left to decode: a real decode, not a
    header probe) and encodes (PIL Image.save, and OpenCV's imencode, which writes the PNG of
    `image_io.encode_png`), and NPY ones (numpy.load, numpy.save: the
    in-flight form), in this process, split into RGB and mask-like (single-channel) images."""

    def __init__(self):
        self.decodes = {"rgb": 0, "mask": 0}
        self.encodes = {"rgb": 0, "mask": 0}
        self.npy_decodes = {"rgb": 0, "mask": 0}
        self.npy_encodes = {"rgb": 0, "mask": 0}

    @staticmethod
    def kind(img) -> str:
        return "mask" if img.mode in MASK_MODES else "rgb"

    def __enter__(self):
        from PIL import Image, ImageFile

        self._load, self._save = ImageFile.ImageFile.load, Image.Image.save
        counter = self

        def load(img, *a, **k):
            if getattr(img, "tile", None):
                counter.decodes[counter.kind(img)] += 1
            return counter._load(img, *a, **k)

        def save(img, *a, **k):
            counter.encodes[counter.kind(img)] += 1
            return counter._save(img, *a, **k)

        def npy_kind(array) -> str:
            return "mask" if getattr(array, "ndim", 3) == 2 else "rgb"

        def np_load(*a, **k):
            array = counter._np_load(*a, **k)
            counter.npy_decodes[npy_kind(array)] += 1
            return array

        def np_save(file, array, *a, **k):
            counter.npy_encodes[npy_kind(array)] += 1
            return counter._np_save(file, array, *a, **k)

        def imencode(ext, array, *a, **k):
            counter.encodes[npy_kind(array)] += 1
            return counter._imencode(ext, array, *a, **k)

        ImageFile.ImageFile.load, Image.Image.save = load, save
        self._imencode, cv2.imencode = cv2.imencode, imencode
        self._np_load, self._np_save = np.load, np.save
        np.load, np.save = np_load, np_save
        return self

    def __exit__(self, *exc):
        from PIL import Image, ImageFile

        ImageFile.ImageFile.load, Image.Image.save = self._load, self._save
        cv2.imencode = self._imencode
        np.load, np.save = self._np_load, self._np_save


def chain_counts(cfg: dict) -> dict[str, Any]:
    """Run the task's stage list in this process on the run's inputs: stage hops per row, PNG
    decodes and encodes per candidate row, and the stage list's length."""
    from pipeline.core.inputs import discover
    from pipeline.engine.stage_list import SplitByTask, WriteShards, build_stage_list
    from pipeline.engine.stage_runner import run_stage

    stages = build_stage_list(cfg)
    records = discover(cfg["input"])[: cfg["run"]["limit"]]
    rows = [
        {"sample_id": "", "task": "", "status": schema.PENDING, "source_uri": r["uri"], "license": r.get("license"), "_shard": 0, "_input": schema.dumps({**r, "index": i})}
        for i, r in enumerate(records)
    ]
    hops = 0
    from stages.decode_stage import DecodeStage

    count = _Counter()
    for stage in stages:
        if isinstance(stage, WriteShards):
            continue
        if isinstance(stage, SplitByTask):
            rows = stage.process_batch(rows)
        elif isinstance(stage, DecodeStage):
            stage.setup()
            rows = run_stage(stage, rows)  # its PNG work is in the decode line of the table
        else:
            stage.setup()
            with count:
                rows = run_stage(stage, rows)
        hops += 1
    cands = [r for r in rows if r["status"] in schema.CANDIDATE_STATUSES]
    n = max(1, len(cands))
    return {
        "stages": [s.name for s in stages],
        "stage_count": len(stages),  # every stage is one hop (decode ... writer)
        "candidates": len(cands),
        "inputs": len(records),
        # after decode; those before the fan-out are shared by the input's candidates: all are divided by candidates
        "decodes_per_row": {k: round(v / n, 2) for k, v in count.decodes.items()},
        "encodes_per_row": {k: round(v / n, 2) for k, v in count.encodes.items()},
        "npy_decodes_per_row": {k: round(v / n, 2) for k, v in count.npy_decodes.items()},
        "npy_encodes_per_row": {k: round(v / n, 2) for k, v in count.npy_encodes.items()},
    }


# -- components ----------------------------------------------------------------------------------


def components(rows: list[Row], cfg: dict, cands_per_input: float) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.core.image_io import decode_image, decode_mask, encode_image, encode_png
    from pipeline.core.rows import record_stage
    from pipeline.engine.stage_runner import run_stage
    from stages.decode import DecodeLimits
    from stages.decode_stage import DecodeStage

    row = rows[0]
    batch = [dict(rows[i % len(rows)]) for i in range(4)]
    out: dict[str, float] = {}

    decode = DecodeStage(DecodeLimits(**cfg["decode"]))
    start = {"sample_id": "", "task": "", "status": schema.PENDING, "source_uri": "", "_shard": 0, "_input": row["_input"]}
    out["decode_stage_per_input"] = cpu_ms(lambda: decode.process_row(dict(start)))
    out["decode_stage_share_per_row"] = out["decode_stage_per_input"] / cands_per_input

    src = row["source_image"]["bytes"]  # PNG, as written
    tgt_array = decode_image(row["target_image"]["bytes"])
    src_npy = encode_image(decode_image(src))
    out["png_decode_1024"] = cpu_ms(lambda: decode_image(src))
    out["png_encode_1024"] = cpu_ms(lambda: encode_png(tgt_array))
    out["npy_decode_1024"] = cpu_ms(lambda: decode_image(src_npy))
    out["npy_encode_1024"] = cpu_ms(lambda: encode_image(tgt_array))
    if row.get("mask"):
        mask = row["mask"]["bytes"]
        mask_array = decode_image(mask, "L")
        mask_npy = encode_image(mask_array)
        out["png_decode_mask"] = cpu_ms(lambda: decode_mask(mask))
        out["png_encode_mask"] = cpu_ms(lambda: encode_png(mask_array))
        out["npy_decode_mask"] = cpu_ms(lambda: decode_mask(mask_npy))
        out["npy_encode_mask"] = cpu_ms(lambda: encode_image(mask_array))

    table = schema.rows_to_table(batch)
    out["arrow_rows_to_table"] = cpu_ms(lambda: schema.rows_to_table(batch), per=len(batch))
    out["arrow_to_pylist"] = cpu_ms(lambda: table.to_pylist(), per=len(batch))
    out["arrow_hop"] = out["arrow_rows_to_table"] + out["arrow_to_pylist"]

    class Noop(Stage):
        name = "noop"
        accepts = (schema.PENDING, *schema.FINAL_STATUSES)

        def process_batch(self, rows):
            return rows

    noop = Noop()
    out["runner_noop_stage"] = cpu_ms(lambda: run_stage(noop, [dict(r) for r in batch]), per=len(batch))
    out["record_stage"] = cpu_ms(lambda: record_stage(dict(row), "bench_stage", seconds=0.0123))

    def write():
        rs = [dict(r) for r in rows]
        t = schema.to_output_table(rs)
        sink = pa.BufferOutputStream()
        pq.write_table(t, sink, compression="zstd")
        hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()

    out["shard_write"] = cpu_ms(write, per=len(rows))

    # not engine overhead but the engine decides where it runs: the common gates and the judge
    # (num_cpus equal to the writer's) are fused by Ray Data into the one shard-writer actor
    from filters.common_gates import CommonGatesStage
    from pipeline.engine.stage_list import judge_stage

    gates, judge = CommonGatesStage.from_config(cfg), judge_stage(cfg)
    pending = rows  # as the task gate left them (ok or rejected): the common gates add theirs
    out["common_gates_stage"] = cpu_ms(lambda: run_stage(gates, [dict(r) for r in pending]), per=len(pending), min_reps=1)
    out["judge_stage"] = cpu_ms(lambda: run_stage(judge, [dict(r) for r in rows]), per=len(rows))
    out["row_bytes_kb"] = sum(len(v["bytes"]) for k in schema.IMAGE_COLUMNS if (v := row.get(k))) / 1024
    return {k: round(v, 3) for k, v in out.items()}


# -- the whole engine -------------------------------------------------------------------------------


class MakeCandidates(Stage):
    """K candidates per input with a 1024-px source, target and mask, as a recipe leaves them
    (the target: the source, mirrored; the mask: a centred box)."""

    name = "make_candidates"
    fans_out = True
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, task: str, k: int):
        self.tasks, self.k, self.task = (task,), k, task

    def process_batch(self, rows: list[Row]) -> list[Row]:
        import numpy as np

        from pipeline.core.image_io import decode_png, encode_png
        from stages.candidates import new_candidate

        out = []
        for row in rows:
            rgb = decode_png(row["source_image"]["bytes"])
            target = encode_png(np.ascontiguousarray(rgb[:, ::-1]))
            h, w = rgb.shape[:2]
            mask = np.zeros((h, w), np.uint8)
            mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
            mask_png = encode_png(mask)
            for i in range(self.k):
                cand = new_candidate(row, self.task, i)
                cand["target_image"] = schema.image_value(target)
                cand["mask"] = schema.image_value(mask_png)
                cand["instruction_en"] = cand["instruction_zh"] = "bench"
                cand["edit"] = schema.dumps({"kind": "bench", "index": i})
                out.append(cand)
        return out


class NoopStage(Stage):
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, name: str, task: str):
        self.name, self.tasks = name, (task,)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        return rows


class SkipAll(Stage):
    """Last in the chain: the rows end `skipped`, so the common gates (the same in every run and
    the biggest fixed cost at 1024 px) leave them alone and the per-hop difference stands out."""

    name = "skip_all"
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, task: str):
        self.tasks = (task,)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        from pipeline.core.rows import mark

        return [mark(r, schema.SKIPPED, "bench: chain ends here") for r in rows]


def engine_run(cfg: dict, hops: int, k: int) -> dict[str, Any]:
    from pipeline.postrun.finish import run_pipeline

    task = cfg["run"]["tasks"][0]
    chain = [MakeCandidates(task, k), *(NoopStage(f"noop_{i}", task) for i in range(hops)), SkipAll(task)]
    t0 = time.perf_counter()
    with CpuSampler() as sampler:
        result = run_pipeline(cfg, log=lambda m: None, task_stages=chain)
        wall = time.perf_counter() - t0
        settle = sampler.settle()  # the run's actors exit: their teardown counts here
    rows = sum(result.manifest["rows"].values())
    cands = result.manifest["rows"]["ok"] + result.manifest["rows"]["rejected"]
    return {
        "hops": hops,
        "cpu_s": round(sampler.used(), 2),
        "cpu_s_by_process": sampler.by_role(),
        "wall_s": round(wall, 2),
        "settle_s": round(settle, 2),
        "rows": rows,
        "candidates": cands,
        "processes_seen": len(sampler.seen),
        "ray_data_operators": sampler.fused_operators(),
    }


def idle_ray_cpu(seconds: float = 5.0) -> dict[str, Any]:
    """CPU per wall second of an idle Ray (its background), for scale."""
    with CpuSampler() as sampler:
        time.sleep(seconds)
    return {"cpu_s_per_s": round(sampler.used() / seconds, 3), "by_process": {k: round(v / seconds, 3) for k, v in sampler.by_role().items()}}


def whole_engine(folder: Path, ann: Path, work: Path, task: str, photos: int, hops: int, k: int, repeats: int) -> dict[str, Any]:
    import ray

    from pipeline.engine.ray_runtime import init_ray

    if ray.is_initialized():
        ray.shutdown()
    init_ray(None, num_cpus=2)  # one Ray for every run: its start-up is in none of them
    runs = []
    try:
        warm = config_for(task, folder, ann, work / "warm", limit=2)
        engine_run(warm, 0, k)  # workers import the stage modules once
        idle = idle_ray_cpu()
        order = [0, hops] * repeats
        for i, h in enumerate(order):
            cfg = config_for(task, folder, ann, work / f"hops-{h}-{i}", limit=photos)
            runs.append(engine_run(cfg, h, k))
            print(f"  engine run {i + 1}/{len(order)}: {h} hops, CPU {runs[-1]['cpu_s']} s, wall {runs[-1]['wall_s']} s", file=sys.stderr)
    finally:
        ray.shutdown()
    base = statistics.mean(r["cpu_s"] for r in runs if r["hops"] == 0)
    chain = statistics.mean(r["cpu_s"] for r in runs if r["hops"] == hops)
    rows = runs[0]["rows"]
    per_hop = (chain - base) * 1000 / max(1, rows * hops)
    workers = [statistics.mean(r["cpu_s_by_process"].get("ray workers", 0.0) for r in runs if r["hops"] == h) for h in (0, hops)]
    return {
        "runs": runs,
        "photos": photos,
        "candidates_per_input": k,
        "hops": hops,
        "cpu_s_0_hops": round(base, 2),
        f"cpu_s_{hops}_hops": round(chain, 2),
        "cpu_ms_per_row_per_hop": round(per_hop, 2),
        "worker_cpu_ms_per_row_per_hop": round((workers[1] - workers[0]) * 1000 / max(1, rows * hops), 2),
        "idle_ray": idle,
        "spread_s": round(max(r["cpu_s"] for r in runs if r["hops"] == 0) - min(r["cpu_s"] for r in runs if r["hops"] == 0), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="color")
    parser.add_argument("--photos", type=int, default=12, help="photos in the whole-engine runs")
    parser.add_argument("--hops", type=int, default=16, help="no-op stages in the whole-engine comparison")
    parser.add_argument("--candidates", type=int, default=8, help="candidates per input in the whole-engine runs")
    parser.add_argument("--repeats", type=int, default=2, help="alternating (0 hops, H hops) pairs")
    parser.add_argument("--skip-engine", action="store_true", help="components only")
    parser.add_argument("--out", default=str(RESULTS / "engine_overhead.json"))
    args = parser.parse_args()

    before = machine()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        work = Path(tmp)
        folder = work / "photos"
        ann = make_photo_inputs(folder, max(args.photos, 2), SIZE)
        cfg = config_for(args.task, folder, ann, work / "real", limit=2)
        print(f"real run: {args.task} on 2 photos at {SIZE} px ...", file=sys.stderr)
        rows, real = real_rows(cfg)
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if not rows:
            raise SystemExit(f"the real run made no candidates: {real}")
        print("counting the chain's hops and PNG calls in-process ...", file=sys.stderr)
        counts = chain_counts(config_for(args.task, folder, ann, work / "counted", limit=2))
        print("components ...", file=sys.stderr)
        comp = components(rows, cfg, real["candidates"] / max(1, real["inputs"]))
        engine = None
        if not args.skip_engine:
            print(f"whole engine: 0 vs {args.hops} no-op stages on {args.photos} photos ...", file=sys.stderr)
            engine = whole_engine(folder, ann, work, cfg["run"]["tasks"][0], args.photos, args.hops, args.candidates, args.repeats)

    hops = counts["stage_count"]
    dec, enc = counts["decodes_per_row"], counts["encodes_per_row"]
    ndec, nenc = counts["npy_decodes_per_row"], counts["npy_encodes_per_row"]
    mdec, menc = comp.get("png_decode_mask", 0.0), comp.get("png_encode_mask", 0.0)
    nmdec, nmenc = comp.get("npy_decode_mask", 0.0), comp.get("npy_encode_mask", 0.0)
    per_hop = comp["arrow_hop"] + comp["runner_noop_stage"]
    lines = [
        ("decode stage (per input / share per row)", comp["decode_stage_per_input"], comp["decode_stage_share_per_row"], 1, comp["decode_stage_share_per_row"]),
        ("NPY decode, 1024 RGB (stages reading source/target)", comp["npy_decode_1024"], None, ndec["rgb"], round(ndec["rgb"] * comp["npy_decode_1024"], 3)),
        ("NPY decode, 1024 mask", nmdec, None, ndec["mask"], round(ndec["mask"] * nmdec, 3)),
        ("NPY encode, 1024 RGB (stages writing target)", comp["npy_encode_1024"], None, nenc["rgb"], round(nenc["rgb"] * comp["npy_encode_1024"], 3)),
        ("NPY encode, 1024 mask", nmenc, None, nenc["mask"], round(nenc["mask"] * nmenc, 3)),
        ("PNG decode, 1024 RGB (pictures not in flight form)", comp["png_decode_1024"], None, dec["rgb"], round(dec["rgb"] * comp["png_decode_1024"], 3)),
        ("PNG decode, 1024 mask", mdec, None, dec["mask"], round(dec["mask"] * mdec, 3)),
        ("PNG encode, 1024 RGB (png_encode: the written form)", comp["png_encode_1024"], None, enc["rgb"], round(enc["rgb"] * comp["png_encode_1024"], 3)),
        ("PNG encode, 1024 mask", menc, None, enc["mask"], round(enc["mask"] * menc, 3)),
        ("Arrow: rows_to_table", comp["arrow_rows_to_table"], None, None, None),
        ("Arrow: table.to_pylist", comp["arrow_to_pylist"], None, None, None),
        ("runner: run_stage, no-op stage (incl. record_stage)", comp["runner_noop_stage"], None, None, None),
        ("record_stage (provenance JSON)", comp["record_stage"], None, None, None),
        ("per stage hop: Arrow in+out + runner", per_hop, None, hops, round(hops * per_hop, 3)),
        ("shard write (to_output_table + Parquet zstd + sha256)", comp["shard_write"], None, 1, comp["shard_write"]),
    ]
    total = sum(x[4] for x in lines if x[4] is not None)
    writer_side = [
        ("(stage work) common gates, per row", comp["common_gates_stage"], None, 1, comp["common_gates_stage"]),
        ("(stage work) judge (cpu: none), per row", comp["judge_stage"], None, 1, comp["judge_stage"]),
    ]
    handoff = sum(x[4] for x in lines[1:7])  # in-flight reads and writes (and any PNG read)
    png = sum(x[4] for x in lines[5:9])
    result = {
        "benchmark": "engine_overhead",
        "size": SIZE,
        "task": args.task,
        "real_run": real,
        "row_bytes_kb": comp["row_bytes_kb"],
        "components_ms_per_row": comp,
        "chain": counts,
        "typical_chain": {
            "stages": hops, "decodes_per_row": dec, "encodes_per_row": enc, "npy_decodes_per_row": ndec, "npy_encodes_per_row": nenc,
            "handoff_ms_per_row": round(handoff, 2), "png_ms_per_row": round(png, 2), "total_ms_per_row": round(total, 2),
        },
        "engine": engine,
        "machine_before": before,
        "machine_after": machine(),
        "load": load_note(before),
    }
    print(f"\nEngine overhead per row at {SIZE} px, task {args.task} (cpu profile); {result['load']}")
    print(f"row images {comp['row_bytes_kb']:.0f} KB (source+target+mask as written, PNG); chain: {hops} stages ({' > '.join(counts['stages'])})")
    print(table(["component", "ms/call or /row", "ms share/row", "times per row", "ms per row in chain"], [list(x) for x in lines]))
    print(table(["stage work near the end of the chain, for scale", "ms/row", "", "", ""], [list(x) for x in writer_side]))
    print(
        f"total outside the stages' own work, per candidate row, {hops}-stage chain: {total:.1f} ms CPU; "
        f"of it hand-offs between stages {handoff:.1f} ms ({handoff / total:.0%}), PNG {png:.1f} ms ({png / total:.0%})"
    )
    print("(decode share and the picture counts are per candidate row: an input's work before the fan-out is divided among its candidates)")
    if engine:
        chain_cpu = engine[f"cpu_s_{engine['hops']}_hops"]
        print(
            f"whole engine: {engine['photos']} photos x {engine['candidates_per_input']} candidates, 0 vs {engine['hops']} no-op stages: "
            f"{engine['cpu_s_0_hops']} s vs {chain_cpu} s CPU (driver + all Ray processes; 0-hop spread "
            f"{engine['spread_s']} s) -> {engine['cpu_ms_per_row_per_hop']} ms CPU per row per stage hop"
            f" (in-process estimate: {per_hop:.2f} ms); Ray workers alone {engine['worker_cpu_ms_per_row_per_hop']} ms"
        )
        for r in engine["runs"]:
            print(f"  run: {r['hops']:>2} hops, {r['rows']} rows, wall {r['wall_s']} s, CPU {r['cpu_s']} s: {r['cpu_s_by_process']}")
        print(f"  Ray Data operators of the {engine['hops']}-hop run: {engine['runs'][-1]['ray_data_operators']}")
        print(f"  idle Ray for scale: {engine['idle_ray']['cpu_s_per_s']} CPU-s per s {engine['idle_ray']['by_process']}")
        measured = engine["cpu_ms_per_row_per_hop"]
        if measured > 0:
            alt = total - hops * per_hop + hops * measured
            result["typical_chain"]["total_ms_per_row_with_measured_hop"] = round(alt, 2)
            print(f"the same total with the engine's measured hop cost ({measured} ms x {hops}): {alt:.1f} ms CPU per row")
    print(f"wrote {write_json(Path(args.out), result)}")


if __name__ == "__main__":
    main()
