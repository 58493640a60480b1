import json

import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core.run_dir import RunDir
from pipeline.engine.shard_writer import ShardWriter


def _row(shard, unit, sid, status, unit_rows=1):
    img = schema.image_value(b"\x89PNG fake")
    return {
        "sample_id": sid, "task": "color_alteration", "status": status, "_shard": shard, "_unit": unit,
        "_unit_rows": unit_rows, "source_image": img, "target_image": img if status in ("ok", "rejected") else None,
        "mask": img, "provenance": json.dumps({"stages": {"x": {"seconds": 0.5}}}),
    }


def test_shard_commits_only_when_every_unit_is_in(tmp_path):
    writer = ShardWriter(str(tmp_path), {0: 2, 1: 1})
    first = writer.add([_row(0, "0:0:c", "a", "ok", unit_rows=2), _row(1, "1:0:c", "z", "skipped")])
    assert {p["shard"]: p["committed"] for p in first} == {0: False, 1: True}
    run = RunDir(tmp_path)
    assert not run.is_committed(0) and run.is_committed(1)
    # a retried task sends the same row again: it counts once
    writer.add([_row(0, "0:0:c", "a", "ok", unit_rows=2)])
    assert not run.is_committed(0)
    writer.add([_row(0, "0:0:c", "b", "rejected", unit_rows=2), _row(0, "0:1:c", "c", "error")])
    assert run.is_committed(0)
    record = json.loads(run.commit_record(0).read_text())
    assert record["rows"] == 3 and record["tasks"]["color_alteration"]["counts"] == {"ok": 1, "rejected": 1, "error": 1}
    assert record["tasks"]["color_alteration"]["inputs"] == 2
    candidates = pq.read_table(tmp_path / "candidates" / "shard-00000.parquet")
    errors = pq.read_table(tmp_path / "errors" / "shard-00000.parquet")
    assert sorted(candidates.column("sample_id").to_pylist()) == ["a", "b"]
    assert errors.column("sample_id").to_pylist() == ["c"]
    assert errors.column("source_image").to_pylist() == [None]  # no candidate, no images
    assert candidates.schema.names == list(schema.ROW_COLUMNS)
    assert b"huggingface" in candidates.schema.metadata
    assert not list(tmp_path.rglob("*.tmp"))


def test_rows_without_a_verdict_or_images_become_errors(tmp_path):
    writer = ShardWriter(str(tmp_path), {0: 2})
    broken = _row(0, "0:1:c", "b", "ok")
    broken["target_image"] = None
    writer.add([_row(0, "0:0:c", "a", schema.PENDING), broken])
    errors = pq.read_table(tmp_path / "errors" / "shard-00000.parquet").to_pylist()
    reasons = sorted(r["reason"] for r in errors)
    assert reasons == ["pipeline: a ok row lacks its source or target image", "pipeline: the row reached the end without a verdict"]


def test_gates_accumulate_and_a_later_gate_can_only_reject():
    from filters.gates import GateResult, record_gates

    row = {"status": schema.PENDING}
    record_gates(row, [GateResult.at_most("outside", 0.2, 0.5), GateResult.at_least("inside", 8.0, 4.0)])
    assert row["status"] == schema.OK
    # margins relative to the threshold: (0.5 - 0.2) / 0.5 and (8 - 4) / 4; the smaller wins
    assert json.loads(row["scores"])["gate_score"] == 0.6
    record_gates(row, [GateResult.at_least("sharpness", 0.5, 0.8)])
    assert row["status"] == schema.REJECTED and row["reason"].startswith("sharpness 0.5")
    record_gates(row, [GateResult.at_most("noise", 0.1, 1.0)])
    assert row["status"] == schema.REJECTED  # the earlier failure stands
    assert set(json.loads(row["scores"])["gates"]) == {"outside", "inside", "sharpness", "noise"}


def test_yes_no_gates_do_not_flatten_the_gate_score():
    from filters.gates import GateResult, record_gates

    row = {"status": schema.PENDING}
    record_gates(row, [GateResult.at_most("size_mismatch", 0.0, 0.0), GateResult.at_least("inside", 6.0, 4.0)])
    assert json.loads(row["scores"])["gate_score"] == 0.5  # the size check passed and carries no margin
    record_gates(row, [GateResult.at_most("size_mismatch", 3.0, 0.0)])
    assert row["status"] == schema.REJECTED and json.loads(row["scores"])["gate_score"] == -1.0
