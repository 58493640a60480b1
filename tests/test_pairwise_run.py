"""Best of N through a whole run on Ray (cpu profile, served judge): the copies of each edit meet
in the pairwise judge's actor, the winner goes on, the loser is committed as `rejected`
(`lost_pairwise`) with the winner's instruction, and every unit's rows are counted."""

import json
from collections import defaultdict

import pyarrow.parquet as pq

from pipeline.core import schema
from tests.fake_pairwise_server import FakePairwiseServer


def test_a_best_of_two_run_commits_every_copy_and_one_winner_per_edit(ray_address, tmp_path):
    from pipeline.cli.main import main

    out = tmp_path / "r"
    with FakePairwiseServer(default="first") as server:
        code = main([
            "run", "--task", "color", "--limit", "1", "--out", str(out), "--no-progress",
            "--judge-url", server.base_url, "--judge-model", "fake-judge", "--set", "decode.working_size=128",
            "--set", "tasks.color_alteration.seeds=2",
        ])
    assert code == 0
    rows = [row for path in sorted((out / "candidates").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]
    groups = defaultdict(list)
    for row in rows:
        groups[json.loads(row["edit"])["best_of"]["group"]].append(row)
    assert groups and all(len(members) == 2 for members in groups.values())
    competing = 0
    for group, members in groups.items():
        records = {r["sample_id"]: schema.loads(r["judge"])["pairwise"] for r in members}
        assert group in records  # seed 0 keeps the edit's own id
        winner = {rec["winner"] for rec in records.values()}
        assert len(winner) == 1
        if all(rec["competed"] for rec in records.values()):
            competing += 1
            # "first" in both orders: a tie, so seed 0 wins and says so
            assert winner == {group} and all(rec["tie_at_top"] for rec in records.values())
            [loser] = [r for r in members if r["sample_id"] != group]
            [won] = [r for r in members if r["sample_id"] == group]
            assert loser["status"] == schema.REJECTED and loser["reason"] == "lost_pairwise"
            assert (loser["instruction_en"], loser["instruction_zh"]) == (won["instruction_en"], won["instruction_zh"])
            assert records[loser["sample_id"]]["comparisons"][0]["tie_reason"] == "disagree"
    assert competing and len(server.pairs) == 2 * competing  # one pair per group, in both orders
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"]["ok"] + manifest["rows"]["rejected"] == len(rows) == 2 * len(groups)
