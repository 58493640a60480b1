"""`score` over this project's rows and over a foreign dataset with its own column names."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli.main import main


@pytest.fixture(scope="module")
def own_rows(tmp_path_factory):
    from pipeline.core import config
    from pipeline.postrun.finish import run_pipeline

    out = tmp_path_factory.mktemp("score") / "run"
    cfg = config.load_config("cpu", overrides=[{"run": {"out": str(out), "progress": False, "limit": 3}, "decode": {"working_size": 256}}])
    return run_pipeline(cfg, log=lambda m: None).run_dir


def test_score_keeps_ids_and_verdicts_of_own_rows(ray_address, own_rows, tmp_path):
    assert main(["score", "--input", str(own_rows / "candidates"), "--out", str(tmp_path / "s")]) == 0
    original = {r["sample_id"]: r for p in (own_rows / "candidates").glob("*.parquet") for r in pq.read_table(p).to_pylist()}
    scored = [r for p in (tmp_path / "s" / "scored").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    assert {r["sample_id"] for r in scored} == set(original)
    for row in scored:
        gates = json.loads(row["scores"])["gates"]
        assert "hue_error_deg" in gates  # the colour check ran from the row's own edit
        if original[row["sample_id"]]["status"] == "rejected":
            assert row["status"] == "rejected"  # a re-score never passes what the run rejected
        assert json.loads(row["judge"])["state"] == "none"


def test_score_reads_a_foreign_dataset_through_a_column_map(ray_address, own_rows, tmp_path):
    rows = [r for p in sorted((own_rows / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist() if r["status"] == "ok"][:2]
    good, other = rows
    lying = dict(good)
    # the same picture, but an instruction that names another colour: the hue check must catch it
    wrong = next(c for c in ("green", "blue", "yellow", "red") if c != json.loads(good["edit"])["color"])
    table = pa.table({
        "before": [good["source_image"]["bytes"], lying["source_image"]["bytes"]],
        "after": [good["target_image"]["bytes"], lying["target_image"]["bytes"]],
        "prompt": [good["instruction_en"], f"Make the object {wrong}."],
        "region": [good["mask"]["bytes"], lying["mask"]["bytes"]],
    })
    path = tmp_path / "foreign.parquet"
    pq.write_table(table, path)
    assert main(["score", "--input", str(path), "--out", str(tmp_path / "s"), "--task", "color", "--columns", "src=before,tgt=after,instruction=prompt,mask=region"]) == 0
    scored = pq.read_table(tmp_path / "s" / "scored" / "part-00000.parquet").to_pylist()
    assert [r["task"] for r in scored] == ["color_alteration"] * 2
    assert json.loads(scored[0]["edit"])["from"] == "instruction"
    assert scored[1]["status"] == "rejected" and "hue_error_deg" in scored[1]["reason"]
    assert len({r["sample_id"] for r in scored}) == 2


def test_score_refuses_a_missing_column(tmp_path, capsys):
    pq.write_table(pa.table({"x": [1]}), tmp_path / "bad.parquet")
    assert main(["score", "--input", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "s"), "--task", "color"]) == 2
    assert "no column 'source_image' for src" in capsys.readouterr().err


def test_a_foreign_row_without_a_mask_says_which_check_did_not_run(ray_address, own_rows, tmp_path):
    good = next(r for p in sorted((own_rows / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist() if r["status"] == "ok")
    pq.write_table(pa.table({"source_image": [good["source_image"]], "target_image": [good["target_image"]], "instruction_en": [good["instruction_en"]]}), tmp_path / "f.parquet")
    assert main(["score", "--input", str(tmp_path / "f.parquet"), "--out", str(tmp_path / "s"), "--task", "color"]) == 0
    row = pq.read_table(tmp_path / "s" / "scored" / "part-00000.parquet").to_pylist()[0]
    assert json.loads(row["scores"])["task_check"][0].startswith("color_gate not run: the row lacks what it reads")
