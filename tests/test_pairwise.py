"""Best of N: the copies (stages/best_of_n.py) and the pairwise judge (filters/judge/pairwise*.py)
against a scripted OpenAI-compatible server: a fair judge's choice wins in both orders, a judge
that always answers "first" ends in ties, a refusal, a malformed answer or a timeout is a tie with
its reason, and N = 1 changes nothing."""

import random

import pytest

from filters.judge.backends import OpenAIJudgeBackend
from filters.judge.pairwise import DISAGREE, LOST, MALFORMED, TIE
from filters.judge.pairwise_stage import BestOfGroups, PairwiseJudgeStage
from filters.judge.policy import Judge, judge_rows
from pipeline.core import config, schema
from pipeline.core.image_io import encode_png
from pipeline.engine.stage_list import build_stage_list
from pipeline.engine.stage_runner import run_stage
from stages.best_of_n import BestOfNStage, best_of, seed_sample_id
from stages.models.openai_client import REFUSED, TIMEOUT, OpenAIChatClient
from tests.fake_pairwise_server import FakePairwiseServer
from tests.model_rows import gradient_photo

MARKS = (10, 20, 30)  # seed k's target carries MARKS[k] in its top-left red value


def group_rows(marks=MARKS, statuses=None, instruction="make the cup red"):
    """The N copies of one candidate, as the gates leave them: target k marked MARKS[k]."""
    source = gradient_photo(48, 64)
    candidate = {
        "sample_id": "edit0", "task": "color_alteration", "status": schema.PENDING, "_unit": "0:0:color_alteration",
        "_unit_rows": 2, "_shard": 0, "edit": schema.dumps({"color": "red"}), "provenance": schema.dumps({}),
        "source_image": schema.image_value(encode_png(source)), "instruction_en": instruction,
    }
    rows = run_stage(BestOfNStage(("color_alteration",), len(marks)), [candidate])
    for k, row in enumerate(rows):
        target = gradient_photo(48, 64)
        target[..., 0] = marks[k]
        row["target_image"] = schema.image_value(encode_png(target))
        row["status"] = (statuses or [schema.OK] * len(marks))[k]
        row["reason"] = {schema.REJECTED: "inside_change 0.1 (limit 4)", schema.ERROR: "sd3: boom"}.get(row["status"])
        row["instruction_en"] = f"{instruction} (template {k})"
        row["instruction_zh"] = f"把杯子变成红色 {k}"
    return rows


def pairwise_stage(server, timeout_s=5.0, rows="ok"):
    client = OpenAIChatClient(server.base_url, "fake-judge", timeout_s=timeout_s, max_retries=0, backoff_s=0.01, max_workers=4)
    return PairwiseJudgeStage(BestOfGroups(OpenAIJudgeBackend(client, max_new_tokens=64), rows), ("color_alteration",))


def judged(rows, server, **kw):
    """Every row of the group after the judge and the rejoin (which releases the losers)."""
    stage = pairwise_stage(server, **kw)
    out = run_stage(stage.rejoin, run_stage(stage, rows))
    return {best_of(r)["seed_index"]: r for r in out}, stage


def pairwise(row):
    return schema.loads(row["judge"])["pairwise"]


# -- the copies -----------------------------------------------------------------------------------


def test_copies_get_stable_distinct_ids_seed_zero_keeping_its_own():
    rows = group_rows()
    assert [r["sample_id"] for r in rows] == [seed_sample_id("edit0", k) for k in range(3)]
    assert rows[0]["sample_id"] == "edit0" and len({r["sample_id"] for r in rows}) == 3
    assert seed_sample_id("edit0", 2) == seed_sample_id("edit0", 2) != seed_sample_id("edit1", 2)
    assert [best_of(r) for r in rows] == [{"group": "edit0", "seed_index": k, "n": 3} for k in range(3)]
    assert {r["_unit_rows"] for r in rows} == {6}  # the unit's 2 candidates, 3 times each
    assert all(schema.loads(r["edit"])["color"] == "red" for r in rows)


def test_one_seed_changes_nothing():
    cfg = config.load_config("cpu", overrides=[{"run": {"tasks": ["color_alteration"]}}])
    names = [s.name for s in build_stage_list(cfg)]
    assert "best_of_n" not in names and "pairwise_judge" not in names and "pairwise_rejoin" not in names
    seeded = config.load_config("cpu", overrides=[{"run": {"tasks": ["color_alteration"]}, "tasks": {"color_alteration": {"seeds": 3}}}, {"judge": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m"}}])
    names = [s.name for s in build_stage_list(seeded)]
    # copies right after the proposal step; the judge after the gates, the rejoin after the captioner
    assert names.index("color_propose") + 1 == names.index("best_of_n")
    assert names.index("common_gates") < names.index("pairwise_judge") < names.index("caption") < names.index("pairwise_rejoin") < names.index("judge")


@pytest.mark.parametrize("override,message", [
    ({"tasks": {"color_alteration": {"seeds": 3}}}, "needs a pairwise judge"),
    ({"tasks": {"color_alteration": {"seeds": 0}}}, "seeds: must be at least 1"),
    ({"run": {"tasks": ["motion_change"]}, "tasks": {"motion_change": {"seeds": 2}}}, "real video frames"),
])
def test_bad_seeds_are_configuration_errors(override, message):
    cfg = config.load_config("cpu", overrides=[{"run": {"tasks": ["color_alteration"]}}, override])
    with pytest.raises(config.ConfigError, match=message):
        build_stage_list(cfg)


# -- the judge --------------------------------------------------------------------------------------


def test_the_judges_choice_wins_in_both_orders():
    with FakePairwiseServer(default="prefer:20") as server:
        rows, _ = judged(group_rows(), server)
    # every pair asked in both orders: 3 pairs x 2
    assert sorted((a, b) for a, b, _ in server.pairs) == sorted([(10, 20), (20, 10), (10, 30), (30, 10), (20, 30), (30, 20)])
    winner = rows[1]
    assert winner["status"] == schema.OK and pairwise(winner)["rank"] == 1 and pairwise(winner)["wins"] == 2.0
    assert [c["result"] for c in pairwise(winner)["comparisons"]] == ["win", "win"]
    for k in (0, 2):
        assert rows[k]["status"] == schema.REJECTED and rows[k]["reason"] == LOST
        record = pairwise(rows[k])
        assert record["winner"] == winner["sample_id"] and record["group"] == "edit0"
        assert record["rank"] == (2 if k == 0 else 3) and record["wins"] == 0.5  # lost to 20, tied with the other
    # the fair judge picks 20 over both; between 10 and 30 it names neither: "B" then "B" -> disagree
    tie = next(c for c in pairwise(rows[0])["comparisons"] if c["other"] == rows[2]["sample_id"])
    assert tie["result"] == TIE and tie["tie_reason"] == DISAGREE


def test_a_judge_that_always_says_first_ends_in_ties_and_seed_zero_wins():
    with FakePairwiseServer(default="first") as server:
        rows, _ = judged(group_rows(), server)
    for k, row in rows.items():
        record = pairwise(row)
        assert record["wins"] == 1.0 and record["tie_at_top"] is True and record["rank"] == k + 1
        assert {(c["result"], c["tie_reason"]) for c in record["comparisons"]} == {(TIE, DISAGREE)}
    assert rows[0]["status"] == schema.OK and {rows[1]["reason"], rows[2]["reason"]} == {LOST}


@pytest.mark.parametrize("behaviour,reason", [("refusal", REFUSED), ("malformed", MALFORMED), ("not_a_choice", MALFORMED), ("slow", TIMEOUT), ("500", TIMEOUT)])
def test_a_failed_answer_is_a_tie_with_its_reason_never_a_winner(behaviour, reason):
    # 10 vs 20 fails; 20 is otherwise preferred, so it still beats 30 on a real answer
    script = {frozenset((10, 20)): behaviour}
    # a 1 s timeout: a loaded machine must not turn the fair answers into timeouts too
    with FakePairwiseServer(default="prefer:20", script=script, slow_s=2.5, prefer=20) as server:
        rows, _ = judged(group_rows(), server, timeout_s=1.0)
    failed = next(c for c in pairwise(rows[0])["comparisons"] if c["other"] == rows[1]["sample_id"])
    assert failed["result"] == TIE and failed["tie_reason"] == reason and failed["why"]
    assert pairwise(rows[1])["wins"] == 1.5 and pairwise(rows[1])["rank"] == 1  # tie + the win over 30


def test_only_gate_passing_targets_compete_and_a_lone_one_wins_without_calls():
    with FakePairwiseServer(default="prefer:10") as server:
        rows, _ = judged(group_rows(statuses=[schema.REJECTED, schema.OK, schema.ERROR]), server)
    assert server.pairs == []
    assert rows[1]["status"] == schema.OK and pairwise(rows[1])["rank"] == 1 and pairwise(rows[1])["comparisons"] == []
    assert pairwise(rows[0])["competed"] is False and pairwise(rows[0])["winner"] == rows[1]["sample_id"]
    assert rows[0]["reason"] == "inside_change 0.1 (limit 4)"  # its gate's reason stands


def test_a_group_is_judged_once_all_rows_are_in_whatever_the_batches():
    """Rows arrive one at a time in shuffled order (as after a model stage's batching): nothing
    comes out until the group is complete, and the outcome is the one a single batch gives."""
    with FakePairwiseServer(default="prefer:30") as server:
        whole, _ = judged(group_rows(), server)
        stage = pairwise_stage(server)
        rows = group_rows()
        random.Random(3).shuffle(rows)
        outs = [run_stage(stage, [row]) for row in rows]
    assert [len(o) for o in outs[:2]] == [0, 0] and stage.groups.held() == 2  # the losers wait for the rejoin
    [winner] = outs[2]
    assert best_of(winner)["seed_index"] == 2
    assert schema.loads(winner["judge"]) == schema.loads(whole[2]["judge"])


def test_losers_wait_for_the_winner_and_take_its_final_instruction():
    with FakePairwiseServer(default="prefer:20") as server:
        stage = pairwise_stage(server)
        [winner] = run_stage(stage, group_rows())
    winner["instruction_en"], winner["instruction_zh"], winner["instruction_source"] = "Turn the mug red.", "把马克杯变成红色。", "mllm"
    out = run_stage(stage.rejoin, [winner])
    assert len(out) == 3 and stage.groups.held() == 0
    for row in out:
        assert (row["instruction_en"], row["instruction_zh"], row["instruction_source"]) == ("Turn the mug red.", "把马克杯变成红色。", "mllm")
    assert sorted(r["status"] for r in out) == [schema.OK, schema.REJECTED, schema.REJECTED]


def test_the_pointwise_judge_keeps_the_pairwise_ranking():
    with FakePairwiseServer(default="prefer:20") as server:
        rows, _ = judged(group_rows(), server)
        client = OpenAIChatClient(server.base_url, "fake-judge", max_retries=0, max_workers=4)
        judge_rows(list(rows.values()), Judge(OpenAIJudgeBackend(client)))
    assert schema.loads(rows[1]["judge"])["state"] == "scored" and pairwise(rows[1])["rank"] == 1
    loser = schema.loads(rows[0]["judge"])
    assert loser["state"] == "none" and loser["reason"].startswith("lost the pairwise") and pairwise(rows[0])["winner"] == rows[1]["sample_id"]


# -- the plan ---------------------------------------------------------------------------------------


def test_plan_counts_the_copies_and_prints_the_judge_calls(capsys):
    from pipeline.cli.main import main

    args = ["plan", "--profile", "gpu", "--task", "color", "--set", "captioner.backend=template", "--set", "judge.backend=qwen"]
    assert main([*args, "--set", "tasks.color_alteration.seeds=3"]) == 0
    out = capsys.readouterr().out
    # 2 objects x 3 colours, each drawn 3 times: 18 rows reach the generator and the pairwise judge,
    # every pair of 3 in both orders is 6 calls an edit; the winners (6) go on to the judge
    line = next(x for x in out.splitlines() if x.startswith("pairwise judge calls"))
    assert "color 3 seeds x 6 edits: 6 calls per edit, 36 per input" in line and "per hour" in line
    rows = {x.split()[0]: x.split()[9] for x in out.splitlines() if x.split() and x.split()[0] in ("sd3_controlnet", "pairwise_judge", "judge")}
    assert rows == {"sd3_controlnet": "18", "pairwise_judge": "18", "judge": "6"}
    assert main(args) == 0
    assert "pairwise judge" not in capsys.readouterr().out


def test_every_read_of_the_best_of_n_stages_has_an_earlier_writer():
    from pipeline.core import fields

    served = {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m"}
    seeds = {"color_alteration": {"seeds": 2}, "style_transfer": {"seeds": 3}}
    cfg = config.load_config("cpu", overrides=[{"run": {"tasks": ["color_alteration", "style_transfer"]}, "judge": served, "tasks": seeds}])
    stages = build_stage_list(cfg)
    assert [s.name for s in stages].count("best_of_n") == 2 and fields.unmet_reads(stages) == []


def test_the_tiny_qwen_twin_judges_in_process_and_its_noise_makes_ties(tmp_path):
    from filters.judge.backends import QwenJudgeBackend
    from stages.models.tiny import qwen2_5_vl as tiny_qwen

    backend = QwenJudgeBackend(str(tiny_qwen.build(tmp_path / "qwen")), max_new_tokens=8)
    stage = PairwiseJudgeStage(BestOfGroups(backend, "candidates"), ("color_alteration",))
    rows = {best_of(r)["seed_index"]: r for r in run_stage(stage.rejoin, run_stage(stage, group_rows(marks=(10, 20))))}
    assert stage.uses_model and len(rows) == 2
    [comparison] = pairwise(rows[0])["comparisons"]
    assert comparison["result"] == TIE and comparison["tie_reason"] in (MALFORMED, REFUSED)
    assert pairwise(rows[0])["rank"] == 1 and pairwise(rows[0])["tie_at_top"] and rows[1]["reason"] == LOST
