"""`export --format preference` over a hand-built run: best-of-N losers against their kept winner,
rejected rows against a kept row of the same edit, a loser whose winner was not kept (no pair),
the licence filter, loading with `datasets`, and the same run giving the same bytes."""

import hashlib
import json

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from pipeline.core import schema
from pipeline.postrun import selection
from pipeline.postrun.export import ExportError, export_run
from pipeline.postrun.preference import PAIR_SCHEMA
from pipeline.postrun.preference_pairs import find_pairs
from tests.test_selection import _row, source_pictures

C = "color_alteration"
CARD_WHY = "the car is red in the first, untouched in the second"


def _best_of(row, group, k, n, wins, rank, winner=None, comparisons=()):
    row["edit"] = json.dumps({"type": "demo", "best_of": {"group": group, "seed_index": k, "n": n}})
    pairwise = {"group": group, "wins": wins, "rank": rank, "comparisons": list(comparisons)}
    if winner:
        pairwise["winner"] = winner
        row.update(status="rejected", reason="lost_pairwise")
    row["judge"] = schema.dumps({**schema.loads(row["judge"]), "pairwise": pairwise})
    return row


def _cmp(other, result, why):
    return {"other": other, "result": result, "why": why, "tie_reason": None}


def rows():
    return [
        # best-of-3: a0 won and is kept; a1 and a2 lost to it
        _best_of(_row("a0", C, "s0", "Make the car red", "ok", 0.9), "a0", 0, 3, 2.0, 1,
                 comparisons=[_cmp("a1", "win", CARD_WHY), _cmp("a2", "win", "cleaner edges")]),
        _best_of(_row("a1", C, "s0", "Make the car red", "ok", 0.9), "a0", 1, 3, 0.5, 2, winner="a0",
                 comparisons=[_cmp("a0", "loss", CARD_WHY), _cmp("a2", "tie", "")]),
        _best_of(_row("a2", C, "s0", "Make the car red", "ok", 0.9), "a0", 2, 3, 0.5, 3, winner="a0",
                 comparisons=[_cmp("a0", "loss", "cleaner edges"), _cmp("a0", "loss", "cleaner edges")]),
        # best-of-2 whose winner fails the selection's gate floor: with a selection, no pair
        _best_of(_row("b0", C, "s1", "Make the hat blue", "ok", -0.1), "b0", 0, 2, 1.0, 1, comparisons=[_cmp("b1", "win", "bluer")]),
        _best_of(_row("b1", C, "s1", "Make the hat blue", "ok", 0.5), "b0", 1, 2, 0.0, 2, winner="b0",
                 comparisons=[_cmp("b0", "loss", "bluer")]),
        # a rejected row with the source and instruction of a kept one; one with other words pairs with nothing
        _row("c0", C, "s2", "Turn the bag green", "ok", 0.8),
        _row("c1", C, "s2", "Turn the bag green", "rejected", -0.2),
        _row("c2", C, "s2", "Turn the bag yellow", "rejected", -0.2),
        _row("d1", C, "s3", "Turn the cup pink", "rejected", -0.2),
        # a same-edit pair whose source states no licence
        _row("e0", C, "s4", "Make the kite orange", "ok", 0.7, license=None),
        _row("e1", C, "s4", "Make the kite orange", "rejected", -0.3, license=None),
    ]


def build(root, select=True):
    path = root / "candidates" / "shard-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(schema.to_output_table(rows()), path)
    (root / "manifest.json").write_text(json.dumps({"rows": {"ok": 1}}))
    if select:
        selection.select_run(root, {"select": {"keep_ratio": 0.5}})
    return root


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pref") / "run")


def pairs_of(folder):
    table = pq.read_table(folder / "data")
    return {(r["origin"], r["chosen_sample_id"], r["rejected_sample_id"]): r for r in table.to_pylist()}


def test_both_origins_and_a_winner_not_kept(selected_run, tmp_path):
    kept = {r["sample_id"] for r in pq.read_table(selected_run / "selection" / "selection.parquet").to_pylist() if r["selected"]}
    assert {"a0", "c0", "e0"} <= kept and "b0" not in kept  # b0 is under the gate floor
    out = tmp_path / "pref"
    manifest = export_run(selected_run, out, fmt="preference")
    pairs = pairs_of(out)
    assert sorted(pairs) == [("best_of_n", "a0", "a1"), ("best_of_n", "a0", "a2"), ("rejected_same_edit", "c0", "c1")]
    assert manifest["origins"] == {"best_of_n": 2, "rejected_same_edit": 1}
    assert manifest["dropped"] == {"unknown license": 1} and manifest["tasks"] == {C: 3}

    by_id = {r["sample_id"]: r for r in rows()}
    loser = pairs[("best_of_n", "a0", "a1")]
    assert loser["why"] == CARD_WHY  # the comparison with the winner, not the tie with a2
    assert pairs[("best_of_n", "a0", "a2")]["why"] == "cleaner edges"  # asked twice, said once
    assert loser["instruction_en"] == "Make the car red" and loser["instruction_zh"] == "把它变红"
    assert loser["source_image"]["bytes"] == by_id["a0"]["source_image"]["bytes"]
    assert loser["chosen_image"]["bytes"] == by_id["a0"]["target_image"]["bytes"]
    assert loser["rejected_image"]["bytes"] == by_id["a1"]["target_image"]["bytes"]
    assert json.loads(loser["chosen_scores"]) == {"gate_score": 0.9, "viescore": None, "pairwise": {"wins": 2.0, "rank": 1}}
    assert json.loads(loser["rejected_scores"])["pairwise"] == {"wins": 0.5, "rank": 2}
    same = pairs[("rejected_same_edit", "c0", "c1")]
    assert same["why"] == "outside 0.3 (limit 0.2)" and json.loads(same["rejected_scores"])["gate_score"] == -0.2

    # the ids are stable hashes; the manifest's checksums match; the card describes pairs
    assert len({r["pair_id"] for r in pairs.values()}) == 3
    for item in manifest["files"]:
        assert hashlib.sha256((out / item["path"]).read_bytes()).hexdigest() == item["sha256"]
    text = (out / "README.md").read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert [f["name"] for f in header["dataset_info"]["features"]] == PAIR_SCHEMA.names
    assert "3 preference pairs" in text and "| best_of_n | 2 |" in text and "| export.kept_rows | the run's selection |" in text

    with_unknown = export_run(selected_run, tmp_path / "all", fmt="preference", include_unknown_license=True)
    assert ("rejected_same_edit", "e0", "e1") in pairs_of(tmp_path / "all") and with_unknown["dropped"] == {}


def test_without_a_selection_status_ok_is_kept(tmp_path):
    run = build(tmp_path / "run", select=False)
    manifest = export_run(run, tmp_path / "pref", fmt="preference")
    assert ("best_of_n", "b0", "b1") in pairs_of(tmp_path / "pref")  # b0 is ok, and nothing selects
    assert manifest["thresholds"]["export.kept_rows"].startswith("status ok") and manifest["selection"] is None


def test_loads_with_datasets_and_same_run_same_bytes(selected_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    first, second = tmp_path / "one", tmp_path / "two"
    export_run(selected_run, first, fmt="preference")
    export_run(selected_run, second, fmt="preference")
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)

    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(first / "data/*.parquet"), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 3 and ds.column_names == PAIR_SCHEMA.names
    row = ds[0]
    for column in ("source_image", "chosen_image", "rejected_image"):
        assert isinstance(row[column], Image.Image) and row[column].size == (64, 64)


def test_refusals(selected_run, tmp_path):
    with pytest.raises(ExportError, match="--keep-ratio does not apply"):
        export_run(selected_run, tmp_path / "x", fmt="preference", keep_ratio=0.5)
    lonely = tmp_path / "lonely"
    path = lonely / "candidates" / "shard-00000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(schema.to_output_table([_row("z0", C, "s0", "Make it red", "ok", 0.9)]), path)
    with pytest.raises(ExportError, match="no preference pair"):
        export_run(lonely, tmp_path / "y", fmt="preference")


def test_a_loser_pairs_only_with_a_kept_winner():
    light = [{k: r.get(k) for k in ("sample_id", "task", "status", "reason", "source_sha256", "instruction_en", "judge", "scores", "license")}
             for r in rows()]
    everything_ok = {r["sample_id"] for r in light if r["status"] == "ok"}
    assert {(p.chosen, p.rejected) for p in find_pairs(light, everything_ok) if p.origin == "best_of_n"} == {("a0", "a1"), ("a0", "a2"), ("b0", "b1")}
    # b0 dropped: b1 is neither a best-of-N pair nor a same-edit pair with anything else
    pairs = find_pairs(light, everything_ok - {"b0"})
    assert all("b1" not in (p.chosen, p.rejected) for p in pairs)
    assert find_pairs(light, everything_ok) == find_pairs(list(reversed(light)), everything_ok)  # order-free


def test_exclude_benchmark_drops_pairs_whose_source_it_holds(selected_run, tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    Image.fromarray(source_pictures()["s0"]).resize((48, 48)).save(bench / "case.jpg", quality=90)  # a0's source, re-encoded
    manifest = export_run(selected_run, tmp_path / "clean", fmt="preference", exclude_benchmark=bench)
    assert sorted(pairs_of(tmp_path / "clean")) == [("rejected_same_edit", "c0", "c1")]
    assert manifest["dropped"] == {"unknown license": 1, "near-duplicate of a benchmark image": 2}


def test_a_loser_that_tied_with_its_winner_pairs_with_nothing():
    """A tie (the two orders disagreed, or an answer failed) makes the winner by seed order, not by
    the judge's preference; a copy its gates rejected still pairs, its reason as why."""
    tied = [
        _best_of(_row("t0", C, "s5", "Make the mug red", "ok", 0.9), "t0", 0, 3, 1.0, 1,
                 comparisons=[_cmp("t1", "tie", "the orders disagree"), _cmp("t2", "win", "")]),
        _best_of(_row("t1", C, "s5", "Make the mug red", "ok", 0.9), "t0", 1, 3, 0.5, 2, winner="t0",
                 comparisons=[_cmp("t0", "tie", "the orders disagree")]),
        _best_of(_row("t2", C, "s5", "Make the mug red", "rejected", 0.1), "t0", 2, 3, 0.0, 3, winner="t0"),
    ]
    tied[2]["reason"] = "inside_change 0.1 (limit 4)"
    tied[2]["judge"] = schema.dumps({"pairwise": {**schema.loads(tied[2]["judge"])["pairwise"], "competed": False}})
    light = [{k: r.get(k) for k in ("sample_id", "task", "status", "reason", "source_sha256", "instruction_en", "judge", "scores", "license")}
             for r in tied]
    pairs = find_pairs(light, {"t0"})
    assert [(p.chosen, p.rejected, p.why) for p in pairs] == [("t0", "t2", "inside_change 0.1 (limit 4)")]
