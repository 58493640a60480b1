"""The selection phase over a run directory built by hand: known gate scores and judge O values,
near-duplicate sources and instructions, rows split over two candidate shards."""

import hashlib
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.core import schema
from pipeline.core.image_io import encode_png
from pipeline.core.run_dir import RunDir
from pipeline.postrun import selection, selection_rules
from pipeline.postrun.dedup import (
    HashIndex,
    hamming,
    near_duplicate_clusters,
    normalise_instruction,
    phash,
    source_hashes,
)

FLUX = "black-forest-labs/FLUX.1-Fill-dev"
JUDGE = "Qwen/Qwen2.5-VL-72B-Instruct"


def smooth_picture(seed: int, size: int = 64) -> np.ndarray:
    """Low-frequency random picture: its pHash is stable under small changes, distinct across seeds."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)
    return np.kron(coarse, np.ones((size // 8, size // 8, 1), dtype=np.uint8))


def source_pictures() -> dict[str, np.ndarray]:
    pics = {f"s{i}": smooth_picture(i) for i in range(10)}
    pics["s0b"] = np.clip(pics["s0"].astype(int) + 3, 0, 255).astype(np.uint8)  # near duplicate of s0
    return pics


def _row(sid, task, src, instruction, status, gate_score=None, o=None, judge_state=None, license="cc-by-4.0", mask=False):
    pics = source_pictures()
    gates = {"inside": {"passed": True, "value": 1.0, "threshold": 0.5, "direction": "at_least"},
             "outside": {"passed": status == "ok", "value": 0.1, "threshold": 0.2, "direction": "at_most"}}
    scores = {"gates": gates, "gate_score": gate_score}
    judge = {"state": judge_state or "none"}
    if judge_state == "scored":
        scores["viescore"] = {"sc": o, "pq": o, "o": o}
        judge.update(model=JUDGE, prompt_hash="abc123")
    return {
        "sample_id": sid, "task": task, "status": status, "reason": None if status == "ok" else "outside 0.3 (limit 0.2)",
        "source_image": schema.image_value(encode_png(pics[src])),
        "target_image": schema.image_value(encode_png(255 - pics[src])),
        "mask": schema.image_value(encode_png(np.full((64, 64), 255, np.uint8))) if mask else None,
        "instruction_en": instruction, "instruction_zh": "把它变红", "edit": json.dumps({"type": "demo"}),
        "source_uri": f"file://{src}.png", "source_sha256": f"sha-{src}", "width": 64, "height": 64, "license": license,
        "scores": schema.dumps(scores), "judge": schema.dumps(judge),
        "provenance": schema.dumps({"stages": {"flux_fill": {"model": FLUX, "revision": "r1"}, "lab_recolor": {"backend": "opencv.Lab"}}}),
    }


def synthetic_rows() -> list[dict]:
    c = "color_alteration"
    rows = [
        _row("c00", c, "s0", "Make the car red.", "ok", 0.9),
        _row("c01", c, "s0b", "Make the car blue", "ok", 0.95, mask=True),  # beats c00: near-duplicate source
        _row("c02", c, "s1", "Make the car red", "ok", 0.95, license=None),  # ties c01, loses on sample_id
        _row("c03", c, "s1", "make  the CAR red!!", "ok", 0.5),  # same instruction, same source as c02
        _row("c04", c, "s2", "Make the car red", "ok", 0.6),  # same words, another picture: not a duplicate
        _row("c05", c, "s3", "Turn the bag green", "ok", -0.1),
        _row("c06", c, "s4", "Turn the hat green", "rejected", -0.5),
    ]
    rows += [_row(f"c{i:02d}", c, f"s{5 + i % 5}", f"filler {i}", "rejected", -0.2) for i in range(7, 40)]
    t = "tone_transformation"
    rows += [
        _row("t00", t, "s5", "Make it dusk", "ok", 0.3, o=8.0, judge_state="scored", license="CC0"),
        _row("t01", t, "s6", "Make it dawn", "ok", 0.3, o=8.0, judge_state="scored"),
        _row("t02", t, "s7", "Make it night", "ok", 0.9, judge_state="unscored"),
        _row("t03", t, "s8", "Make it winter", "ok", 0.9, o=5.0, judge_state="scored"),
        _row("t05", t, "s9", "Make it autumn", "ok", 0.1, o=7.0, judge_state="scored"),
    ]
    rows += [_row(f"t{i:02d}", t, "s9", f"tone filler {i}", "rejected", -0.3) for i in range(6, 21)]
    s = "style_transfer"
    rows += [
        _row("st0", s, "s1", "Paint it like a watercolour", "ok", 0.3),  # same source as colour rows: other task
        _row("st1", s, "s1", "Paint it like an oil painting", "ok", 0.4),
        _row("st2", s, "s1", "Make it a sketch", "rejected", -0.1),
    ]
    return rows


def build_run(root):
    """Two candidate shards; colour rows alternate between them so dedup must look across shards."""
    rows = synthetic_rows()
    shards = {0: [], 1: []}
    for i, row in enumerate(rows):
        shards[i % 2 if row["task"] == "color_alteration" else 1].append(row)
    for shard, part in shards.items():
        path = root / "candidates" / f"shard-{shard:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(schema.to_output_table(part), path)
    (root / "manifest.json").write_text(json.dumps({"rows": {"ok": 1}}))
    return root


CFG = {"select": {}}


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
    root = build_run(tmp_path_factory.mktemp("run") / "run")
    result = selection.select_run(root, CFG)
    table = pq.read_table(root / "selection" / "selection.parquet").to_pylist()
    return root, result, {r["sample_id"]: r for r in table}


def test_keep_ratio_per_task_with_at_least_one():
    assert selection_rules.keep_count(0.05, 40, 3) == 2
    assert selection_rules.keep_count(0.05, 20, 3) == 1
    assert selection_rules.keep_count(0.05, 3, 2) == 1  # 0.15 rounds down to 0, but one row qualified
    assert selection_rules.keep_count(0.05, 3, 0) == 0
    assert selection_rules.keep_count(0.15, 20, 10) == 3  # 0.15 x 20 is 2.9999999999999996 in floating point
    assert selection_rules.keep_count(0.5, 40, 3) == 3


def test_selected_rows_and_ties_by_sample_id(selected_run):
    root, result, rec = selected_run
    chosen = sorted(sid for sid, r in rec.items() if r["selected"])
    assert chosen == ["c01", "c02", "st1", "t00"]
    assert result["selected"] == 4 and result["candidates"] == len(synthetic_rows()) and not result["skipped"]
    # equal scores: the smaller sample_id ranks first
    assert (rec["c01"]["rank"], rec["c02"]["rank"]) == (1, 2)
    assert (rec["t00"]["rank"], rec["t01"]["rank"], rec["t05"]["rank"]) == (1, 2, 3)
    assert rec["c04"]["reason"].startswith("outside the keep ratio") and rec["c04"]["rank"] == 3
    assert rec["t01"]["reason"].startswith("outside the keep ratio")
    assert rec["st0"]["reason"].startswith("outside the keep ratio")


def test_score_kinds_and_thresholds(selected_run):
    _, _, rec = selected_run
    assert {rec[s]["score_kind"] for s in ("c01", "c06")} == {"gate_score"}
    assert rec["t00"]["score_kind"] == "o" and rec["t00"]["score"] == 8.0
    assert rec["t03"]["reason"].startswith("below min O")
    assert rec["t02"]["reason"] == "the judge could not score it"
    assert rec["c05"]["reason"].startswith("below min gate score")
    assert rec["c06"]["reason"] == "status rejected" and rec["c06"]["rank"] is None


def test_dedup_winners_and_reasons(selected_run):
    _, _, rec = selected_run
    # across shards: c00 (shard 0) and c01 (shard 1) have near-duplicate sources; c01 scores higher
    assert rec["c00"]["reason"] == "near-duplicate source of c01" and not rec["c00"]["selected"]
    assert rec["c00"]["dedup_group"] == rec["c01"]["dedup_group"] and rec["c00"]["dedup_winner"] == "c01"
    assert rec["c03"]["reason"] == "near-duplicate instruction of c02" and rec["c03"]["dedup_winner"] == "c02"
    assert rec["c04"]["dedup_group"] is None  # the same words on another picture are a distinct triplet
    # the same source in another task is not a duplicate
    assert rec["st1"]["selected"] and rec["st1"]["dedup_group"] is None
    # every candidate stays in the record, with a reason when not selected
    assert all(r["selected"] or r["reason"] for r in rec.values())


def test_dedup_building_blocks():
    pics = source_pictures()
    a, b, c = (phash(encode_png(pics[k])) for k in ("s0", "s0b", "s1"))
    assert hamming(a, b) <= 2 < 10 < hamming(a, c)
    index = HashIndex(6)
    index.add("a", a)
    assert index.near(b) == {"a"} and index.near(c) == set()
    # closeness chains: x~y and y~z put all three in one cluster, named by the smallest key
    clusters = near_duplicate_clusters({"z": "000000000000000f", "y": "0000000000000003", "x": "0000000000000000"}, 2)
    assert set(clusters.values()) == {"x"}
    assert normalise_instruction("Please make THE car red!") == normalise_instruction("make car  red") == "make car red"


def test_instruction_scope_task_groups_the_same_words_on_other_pictures(selected_run, tmp_path):
    root = shutil.copytree(selected_run[0], tmp_path / "run")
    selection.select_run(root, {"select": {"instruction_scope": "task"}})
    rec = {r["sample_id"]: r for r in pq.read_table(root / "selection" / "selection.parquet").to_pylist()}
    assert rec["c04"]["reason"] == "near-duplicate instruction of c02"


def test_gate_score_of_rows_recorded_before_it_existed():
    gates = {"a": {"passed": True, "value": 0.5, "threshold": 1.0, "direction": "at_most"},
             "b": {"passed": True, "value": 3.0, "threshold": 2.0, "direction": "at_least"}}
    assert selection_rules.gate_score({"gates": gates}) == 0.5
    assert selection_rules.gate_score({"gates": gates, "gate_score": 0.25}) == 0.25
    assert selection_rules.gate_score({}) is None


def test_hq_copies_are_full_rows_marked_selected(selected_run):
    root, _, _ = selected_run
    hq = pq.read_table(root / "hq" / "shard-00000.parquet")
    assert hq.schema.names == list(schema.ROW_COLUMNS) and b"huggingface" in hq.schema.metadata
    assert sorted(hq.column("sample_id").to_pylist()) == ["c01", "c02", "st1", "t00"]
    assert all(hq.column("selected").to_pylist())
    assert all(v["bytes"] for v in hq.column("target_image").to_pylist())
    # candidates are left as they were
    cands = pq.read_table(root / "candidates").column("selected").to_pylist()
    assert not any(cands)


def test_funnel_in_manifest(selected_run):
    root, result, _ = selected_run
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["rows"] == {"ok": 1}  # what was there stays
    color = manifest["funnel"]["color_alteration"]
    assert color["generated"] == 40 and color["passed_all_gates"] == 6
    assert color["passed_gates"] == {"inside": 40, "outside": 6}
    assert color["judged"] == 0 and color["kept"] == 2 and color["score_kind"] == "gate_score"
    tone = manifest["funnel"]["tone_transformation"]
    assert (tone["generated"], tone["judged"], tone["kept"]) == (20, 4, 1)
    assert manifest["funnel"] == result["funnel"]


def test_rerun_is_a_no_op_then_repeatable_after_a_crash(selected_run, tmp_path, monkeypatch):
    root = shutil.copytree(selected_run[0], tmp_path / "run")
    first = (root / "selection" / "selection.parquet").read_bytes()
    hq_first = (root / "hq" / "shard-00000.parquet").read_bytes()
    done_mtime = (root / "selection" / "done.json").stat().st_mtime_ns
    assert selection.select_run(root, CFG)["skipped"]
    assert (root / "selection" / "done.json").stat().st_mtime_ns == done_mtime

    # a crash before the completion record: the selection is redone, stray output cleared
    (root / "selection" / "done.json").unlink()
    (root / "hq" / "shard-00007.parquet").write_bytes(b"stale")
    order = []
    real_write = selection.atomic_write
    monkeypatch.setattr(selection, "atomic_write", lambda path, data: (order.append(path.name), real_write(path, data)))
    again = selection.select_run(root, CFG)
    assert not again["skipped"] and order[-1] == "done.json"
    assert (root / "selection" / "selection.parquet").read_bytes() == first
    assert (root / "hq" / "shard-00000.parquet").read_bytes() == hq_first
    assert not (root / "hq" / "shard-00007.parquet").exists()

    # other settings: a new selection, not the recorded one
    wider = selection.select_run(root, {"select": {"keep_ratio": 0.5}})
    assert not wider["skipped"] and wider["selected"] > again["selected"]
    done = json.loads((root / "selection" / "done.json").read_text())
    assert done["settings"]["keep_ratio"] == 0.5 and done["summary"]["selected"] == wider["selected"]


def test_unfinished_run_is_refused(tmp_path):
    run = RunDir(build_run(tmp_path / "run"))
    run.write_plan([{"path": "x"}], 1, {"config_hash": "h", "tasks": [], "profile": "cpu"})
    with pytest.raises(selection.SelectionError, match="not committed"):
        selection.select_run(run.root, CFG)


def test_hq_shards_hold_shard_rows_each_whatever_the_read_batches(tmp_path):
    root = build_run(tmp_path / "run")
    files = selection.candidate_files(RunDir(root))
    everything = {r["sample_id"] for f in files for r in pq.read_table(f, columns=["sample_id"]).to_pylist()}
    written = selection.copy_selected(files, everything, tmp_path / "hq", tmp_path, shard_rows=7, batch_rows=5)
    sizes = [item["rows"] for item in written]
    assert sum(sizes) == len(everything) and all(n == 7 for n in sizes[:-1]) and 1 <= sizes[-1] <= 7
    copied = pq.read_table(tmp_path / "hq")
    assert sorted(copied.column("sample_id").to_pylist()) == sorted(everything) and all(copied.column("selected").to_pylist())
    originals = {r["sample_id"]: r for f in files for r in pq.read_table(f).to_pylist()}
    for row in copied.to_pylist():  # full rows, pictures included, only `selected` changed
        assert {k: v for k, v in row.items() if k != "selected"} == {k: v for k, v in originals[row["sample_id"]].items() if k != "selected"}
    for item in written:
        assert hashlib.sha256((tmp_path / item["path"]).read_bytes()).hexdigest() == item["sha256"]


def test_source_hashes_as_ray_tasks_match_the_in_process_ones(ray_address, tmp_path):
    root = build_run(tmp_path / "run")
    files = selection.candidate_files(RunDir(root))
    import ray

    assert len(files) >= 2 and ray.is_initialized()
    assert selection.hash_sources(files, 3) == source_hashes(files, 64)
