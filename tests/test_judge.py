"""The VIEScore judge (filters/judge/) against a scripted fake server and the tiny Qwen twin:
retries, what is scored and what is unscored, what the rows record, the judge from the config."""

import json
import math

import numpy as np
import pytest

from filters import viescore
from filters.judge.backends import (
    OpenAIJudgeBackend,
    QwenJudgeBackend,
    generate_with_images,
)
from filters.judge.policy import NO_JUDGE, REJECTED_BY_GATES, Judge, judge_rows
from filters.judge.stage import JudgeStage, make_judge, make_judge_stage
from filters.viescore import combine
from pipeline.core import schema
from pipeline.core.config import load_config
from pipeline.core.image_io import encode_png
from pipeline.core.rows import provenance
from pipeline.engine.stage_runner import run_stage
from stages.models.openai_client import OpenAIChatClient
from stages.models.tiny import qwen2_5_vl as tiny_qwen
from tests.fake_judge_server import FakeJudgeServer
from tests.model_rows import gradient_photo, through_arrow

SECRET = "sk-test-never-in-a-row-0123456789"

# -- rows and judges --------------------------------------------------------------------------------


def candidate(mark, status=schema.OK, size=(48, 64), target_size=None, instruction="make the cup red"):
    """A candidate whose edited image names it to the fake judge: its red channel is `mark`."""
    source = gradient_photo(*size)
    target = gradient_photo(*(target_size or size))
    target[..., 0] = mark
    scores = {"gates": {"sanity": {"value": 1.0, "threshold": 0.5, "passed": True, "direction": "at_least"}}, "gate_score": 1.0}
    return {
        "sample_id": f"r{mark:03d}",
        "task": "color_alteration",
        "status": status,
        "reason": "inside_change 0.001 (limit 0.01)" if status == schema.REJECTED else None,
        "source_image": schema.image_value(encode_png(source)),
        "target_image": schema.image_value(encode_png(target)),
        "instruction_en": instruction,
        "scores": schema.dumps(scores),
    }


def served_judge(server, timeout_s=5.0, retries=2):
    client = OpenAIChatClient(server.base_url, "fake-judge", timeout_s=timeout_s, max_retries=retries, backoff_s=0.01, max_workers=4)
    return Judge(OpenAIJudgeBackend(client, revision="2025-04-14", max_new_tokens=200))


def judged(row):
    return schema.loads(row["judge"]), schema.loads(row["scores"])


def run_one(script, timeout_s=5.0, retries=2, slow_s=1.0):
    with FakeJudgeServer(script, slow_s=slow_s) as server:
        [row] = judge_rows([candidate(1)], served_judge(server, timeout_s, retries))
    record, scores = judged(row)
    return record, scores, server


def assert_no_numbers(record, scores):
    assert record["state"] != "scored"
    for key in ("sc", "pq", "o", "sc_scores", "pq_scores"):
        assert record.get(key) is None, key
    assert "viescore" not in scores


def test_good_replies_are_scored_from_what_the_judge_said(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    script = {(9, "sc"): ["good:8,6"], (9, "pq"): ["fenced:9,7"]}
    row = candidate(9, size=(48, 64), target_size=(96, 80))
    with FakeJudgeServer(script) as server:
        [row] = judge_rows([row], served_judge(server))
    record, scores = judged(row)
    assert record["state"] == "scored" and record["sc_scores"] == [8, 6] and record["pq_scores"] == [9, 7]
    assert (record["sc"], record["pq"], record["o"]) == (6.0, 7.0, round(math.sqrt(42), 4))
    assert scores["viescore"] == {"sc": 6.0, "pq": 7.0, "o": round(math.sqrt(42), 4)}
    assert scores["gates"]["sanity"]["passed"]  # the gates' record is kept
    assert record["model"] == "fake-judge" and record["revision"] == "2025-04-14" and record["backend"] == "openai"
    assert record["prompt_hash"] == viescore.PROMPT_HASH
    assert record["decoding"] == {"temperature": 0.0, "max_tokens": 200}
    assert record["attempts"] == {"sc": 1, "pq": 1} and record["sc_reasoning"] == "scripted"

    [sc] = server.requests_for(9, "sc")
    [pq] = server.requests_for(9, "pq")
    # SC: source, then edited (resized to the source), then the text; PQ: the edited image alone
    assert sc["order"] == ["image_url", "image_url", "text"] and pq["order"] == ["image_url", "text"]
    source, edited = sc["images"]
    assert source.shape == edited.shape == pq["images"][0].shape == (48, 64, 3)
    assert (source == gradient_photo(48, 64)).all() and (edited[..., 0] == 9).all()
    assert "make the cup red" in sc["prompt"] and "make the cup red" not in pq["prompt"]
    assert sc["body"]["temperature"] == 0.0 and sc["body"]["max_tokens"] == 200
    assert sc["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(row, default=str)


def test_malformed_then_good_uses_the_stricter_retry():
    record, scores, server = run_one({(1, "sc"): ["malformed", "good:7,9"], (1, "pq"): ["good:5,8"]})
    assert record["state"] == "scored" and record["sc_scores"] == [7, 9] and scores["viescore"]["o"] == round(math.sqrt(35), 4)
    assert record["attempts"] == {"sc": 2, "pq": 1}
    first, retry = server.requests_for(1, "sc")
    assert retry["prompt"].startswith(first["prompt"]) and "could not be used" in retry["prompt"]
    assert "does not parse" in retry["prompt"]
    assert record["calls"]["sc"]["rejected_replies"] == ["unreadable: the reply's JSON does not parse"]
    assert len(retry["images"]) == 2  # the retry shows the same pictures


@pytest.mark.parametrize("bad", ["malformed", "prose", "good:11,3", "good:7.5,8", "raw:{\"score\": [6]}"])
def test_unreadable_twice_is_unscored(bad):
    record, scores, server = run_one({(1, "sc"): [bad, bad]})
    assert_no_numbers(record, scores)
    assert record["state"] == "unscored" and record["reason"].startswith("sc: unreadable")
    assert record["attempts"]["sc"] == 2 and len(server.requests_for(1, "sc")) == 2


@pytest.mark.parametrize(
    "behaviour, reason",
    [
        ("refusal", "refused"),
        ("refusal_field", "refused"),
        ("empty", "empty"),
        ('raw:{"score": [0, 0], "reasoning": "I cannot see the images."}', "refused: the reasoning declines"),
    ],
)
def test_refusals_and_empty_replies_are_never_scores(behaviour, reason):
    record, scores, server = run_one({(1, "pq"): [behaviour, "good:9,9"]})
    assert_no_numbers(record, scores)
    assert record["reason"].startswith(f"pq: {reason}")
    assert len(server.requests_for(1, "pq")) == 1  # a refusal is not asked again with a stricter prompt


def test_timeout_is_unscored():
    record, scores, server = run_one({(1, "sc"): ["slow"]}, timeout_s=0.2, retries=1, slow_s=0.6)
    assert_no_numbers(record, scores)
    assert record["reason"].startswith("sc: timeout") and record["calls"]["sc"]["requests"] == 2


def test_busy_server_then_good_is_scored():
    record, scores, server = run_one({(1, "sc"): ["429", "good:4,6"], (1, "pq"): ["good:9,8"]})
    assert record["state"] == "scored" and record["sc"] == 4.0 and record["pq"] == 8.0
    assert record["calls"]["sc"]["requests"] == 2 and record["attempts"]["sc"] == 1


def test_failing_server_is_unscored_after_its_retries():
    record, scores, server = run_one({(1, "sc"): ["500"], (1, "pq"): ["500"]}, retries=2)
    assert_no_numbers(record, scores)
    assert "sc: http_error: HTTP 500" in record["reason"] and "pq: http_error" in record["reason"]
    assert len(server.requests_for(1, "sc")) == 3


# The batch: what the server says per row, and which rows may end up scored.
BATCH = {
    1: (["good:8,6"], ["good:9,7"]),
    2: (["fenced:10,3"], ["good:4,4"]),
    3: (["malformed", "good:7,7"], ["good:6,9"]),
    4: (["malformed", "malformed"], ["good:9,9"]),
    5: (["refusal"], ["good:9,9"]),
    6: (["good:9,9"], ["empty"]),
    7: (["slow"], ["good:9,9"]),
    8: (["429", "good:2,9"], ["good:3,3"]),
    9: (["500"], ["good:9,9"]),
    10: (["good:11,3", "good:11,3"], ["good:9,9"]),
    11: (["good:7.5,8", "good:7,8"], ["good:5,6"]),
    12: (["prose", "prose"], ["good:9,9"]),
    13: (["good:9,9"], ["refusal_field"]),
    14: (['raw:{"score": [6]}', 'raw:{"score": [6]}'], ["good:9,9"]),
    15: (["good:-1,5", "good:-1,5"], ["good:9,9"]),
    16: (["good:8.0,9"], ["good:5,5"]),
    17: (['raw:{"score": [0, 0], "reasoning": "No image was provided."}'], ["good:9,9"]),
}
SCORED_MARKS = {1, 2, 3, 8, 11, 16}


def said(server, mark, kind):
    """The sub-scores in the server's last reply to that call, if it was a valid judgement."""
    name, _, arg = server.requests_for(mark, kind)[-1]["behaviour"].partition(":")
    if name not in ("good", "fenced"):
        return None
    numbers = json.loads(f"[{arg}]")
    return numbers if all(float(n).is_integer() and 0 <= n <= 10 for n in numbers) else None


def test_a_batch_carries_zero_fabricated_scores():
    script = {(m, k): plan for m, (sc, pq) in BATCH.items() for k, plan in (("sc", sc), ("pq", pq))}
    rows = [candidate(m) for m in BATCH] + [candidate(99, status=schema.REJECTED)]
    rows.append({**candidate(98), "status": schema.ERROR, "reason": "flux_fill: boom"})
    with FakeJudgeServer(script, slow_s=0.6) as server:
        stage = JudgeStage(served_judge(server, timeout_s=0.3, retries=1))
        out = {r["sample_id"]: r for r in through_arrow(run_stage(stage, through_arrow(rows)))}
    assert not stage.uses_model
    scored = set()
    for mark in BATCH:
        record, scores = judged(out[f"r{mark:03d}"])
        if record["state"] == "scored":
            scored.add(mark)
            # every number is exactly what the server said
            assert record["sc_scores"] == said(server, mark, "sc") and record["pq_scores"] == said(server, mark, "pq")
            expected = combine(tuple(record["sc_scores"]), tuple(record["pq_scores"]))
            assert scores["viescore"] == expected == {k: record[k] for k in ("sc", "pq", "o")}
        else:
            assert record["state"] == "unscored" and record["reason"]
            assert_no_numbers(record, scores)
    assert scored == SCORED_MARKS
    rejected, _ = judged(out["r099"])
    assert rejected == {"state": "none", "reason": REJECTED_BY_GATES}
    assert not server.requests_for(99, "sc") and not server.requests_for(99, "pq")  # never sent
    assert out["r098"]["judge"] is None and out["r098"]["status"] == schema.ERROR
    assert provenance(out["r001"])["stages"]["judge"]["prompt_hash"] == viescore.PROMPT_HASH


def test_without_a_judge_every_row_ranks_by_the_gate_score():
    stale = candidate(1)
    stale["scores"] = schema.dumps({"gate_score": 0.4, "viescore": {"sc": 9, "pq": 9, "o": 9}})
    rows = [stale, candidate(2, status=schema.REJECTED)]
    stage = make_judge_stage(load_config("cpu"))
    out = run_stage(stage, rows)
    ok, rejected = (judged(r) for r in sorted(out, key=lambda r: r["sample_id"]))
    assert ok[0] == {"state": "none", "reason": NO_JUDGE, "ranked_by": "gate_score"}
    assert "viescore" not in ok[1] and ok[1]["gate_score"] == 0.4
    assert rejected[0] == {"state": "none", "reason": REJECTED_BY_GATES, "ranked_by": "gate_score"}


def test_judge_from_the_config():
    served = load_config("cpu", overrides=[{"judge": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "gpt-x", "concurrency": 3}}])
    judge = make_judge(served)
    assert isinstance(judge.backend, OpenAIJudgeBackend)
    assert judge.backend.client.max_workers == 3 and judge.backend.client.model == "gpt-x"
    assert make_judge_stage(served).resources.num_gpus == 0.0
    assert make_judge_stage(served).loads == () and make_judge_stage(load_config("cpu")).loads == ()
    with pytest.raises(ValueError, match="judge.url"):
        make_judge(load_config("cpu", overrides=[{"judge": {"backend": "openai", "model": "gpt-x"}}]))
    with pytest.raises(ValueError, match="judge.backend"):
        make_judge(load_config("cpu", overrides=[{"judge": {"backend": "gpt"}}]))
    local = make_judge_stage(load_config("tiny", overrides=[{"judge": {"backend": "qwen"}}]))
    assert local.uses_model and local.resources.num_gpus == 0.5
    assert local.loads == ("qwen2_5_vl",)  # the registry's model: the tiny profile builds its twin first
    own = make_judge_stage(load_config("tiny", overrides=[{"judge": {"backend": "qwen", "model": "/models/my-qwen"}}]))
    assert own.loads == ()
    assert local.judge.backend.model is None  # nothing loads before setup


def test_rows_without_an_instruction_or_readable_images_are_unscored():
    no_text = candidate(1, instruction="  ")
    broken = candidate(2)
    broken["target_image"] = schema.image_value(b"not a png")
    with FakeJudgeServer() as server:
        out = judge_rows([no_text, broken], served_judge(server))
    assert not server.requests
    for row, reason in zip(out, ("no English instruction", "unreadable image")):
        record, scores = judged(row)
        assert_no_numbers(record, scores)
        assert reason in record["reason"]


# -- the tiny Qwen twin: junk in, unscored out --------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    judge = Judge(QwenJudgeBackend(str(tiny_qwen.build(tmp_path_factory.mktemp("qwen_judge"))), max_new_tokens=8))
    judge.setup()
    return judge


def test_tiny_qwen_pairs_each_prompt_with_its_own_images(tiny_judge):
    model = tiny_judge.backend.model
    a, b, c = (np.random.default_rng(s).integers(0, 255, (56, 56, 3), dtype=np.uint8) for s in range(3))
    batched = generate_with_images(model, [[c], [a, b]], ["rate it", "rate the edit of the first image"], 6, 0.0)
    alone = generate_with_images(model, [[a, b]], ["rate the edit of the first image"], 6, 0.0)
    assert len(batched) == 2 and all(isinstance(t, str) for t in batched)
    assert batched[1] == alone[0]


def test_tiny_qwen_judge_gives_unscored_never_a_number(tiny_judge):
    rows = [candidate(1), candidate(2, target_size=(40, 40))]
    stage = JudgeStage(tiny_judge)
    out = run_stage(stage, rows)
    assert stage.uses_model
    for row in out:
        record, scores = judged(row)
        assert record["state"] == "unscored" and record["reason"]
        assert_no_numbers(record, scores)
        assert record["backend"] == "qwen" and record["dtype"] == "float32"
        assert record["decoding"] == {"temperature": 0.0, "max_new_tokens": 8, "do_sample": False}
        # junk text earns the stricter retry; an empty reply does not
        for call in record["calls"].values():
            assert call["attempts"] == (1 if call["reason"].startswith("empty") else 2)
