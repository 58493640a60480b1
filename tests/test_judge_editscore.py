"""The EditScore judge backend: its rubric on hand-written replies (EditScore's prompts, its 0-25
scale mapped onto SC/PQ/O 0-10), the judge's rules through a scripted backend, the config, and
the real loading path (Qwen2.5-VL + a LoRA adapter merged by peft) on the tiny twin with a tiny
random adapter."""

import math

import pytest

from filters.judge import editscore_rubric as rubric
from filters.judge.editscore_backend import (
    EditScoreJudgeBackend,
    adapter_folder,
    chat_text,
)
from filters.judge.editscore_rubric import EDITSCORE, combine, parse_reply
from filters.judge.policy import Judge
from filters.judge.stage import JudgeStage, make_judge_stage
from pipeline.core import schema
from pipeline.core.config import ConfigError, load_config
from pipeline.core.image_io import decode_image
from pipeline.engine.stage_runner import run_stage
from stages.models.openai_client import ChatResult
from stages.models.tiny import qwen2_5_vl as tiny_qwen
from tests.test_judge import assert_no_numbers, candidate, judged
from tests.tiny_lora import build as build_lora

GOOD_SC = '{"reasoning": "The cup is red now; the table is unchanged.", "score": [20, 15]}'
GOOD_PQ = '{\n"reasoning" : "Natural light, a small seam.",\n"score" : [25, 10]\n}'


def test_prompts_are_editscores_at_range_25():
    sc = rubric.sc_prompt("make   the cup red")
    assert sc.endswith("Editing instruction: make the cup red\n")
    assert "From scale 0 to 25" in sc and "A score from 0 to 25 will be given based on the success of the editing" in sc
    assert "10" not in sc and "Two images will be provided" in sc and '"reasoning" : "...",' in sc
    pq = rubric.pq_prompt()
    assert "output score = [naturalness, artifacts]" in pq and "From scale 0 to 25" in pq and "Editing instruction" not in pq
    assert "0-25" in rubric.strict_prompt(pq, "no JSON object")


def test_chat_text_labels_each_image():
    assert chat_text(2, "PROMPT") == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<img1>: <|vision_start|><|image_pad|><|vision_end|><img2>: <|vision_start|><|image_pad|><|vision_end|>"
        "PROMPT<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("reply, scores", [(GOOD_SC, (20, 15)), (GOOD_PQ, (25, 10)), ('{"score": [7.5, 0]}', (7.5, 0))])
def test_readable_replies(reply, scores):
    assert parse_reply(reply).scores == scores


@pytest.mark.parametrize("reply", ['{"score": [26, 3]}', '{"score": ["8", 3]}', '{"score": [true, 3]}', '{"score": [1, 2, 3]}',
                                   '{"score": 9}', "no json here", '{"score": [3, 4], "reasoning": 5}'])
def test_unreadable_replies_are_never_scores(reply):
    parsed = parse_reply(reply)
    assert not parsed.ok and parsed.reason and not parsed.refused


def test_a_declining_reasoning_is_a_refusal():
    parsed = parse_reply('{"reasoning": "I cannot see the images provided.", "score": [0, 0]}')
    assert parsed.refused and not parsed.ok


def test_scores_map_onto_0_to_10_as_editscore_does():
    # EditScore.evaluate: min(pair) / (25 / 10); O = sqrt(SC * PQ)
    assert combine((20, 15), (25, 10)) == {"sc": 6.0, "pq": 4.0, "o": round(math.sqrt(24), 4)}
    assert combine((25, 25), (25, 25)) == {"sc": 10.0, "pq": 10.0, "o": 10.0}


class ScriptedBackend:
    """Answers EditScore's prompts from a list, in order; remembers what it was asked."""

    uses_model = False

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def setup(self):
        pass

    def ask(self, calls):
        self.prompts += [c.prompt for c in calls]
        return [ChatResult(self.replies.pop(0)) for _ in calls]

    def describe(self):
        return {"backend": "editscore", "model": "scripted"}


def test_judge_records_scores_on_0_to_10_and_the_raw_0_to_25():
    backend = ScriptedBackend(["junk", GOOD_PQ, GOOD_SC])  # SC's first answer is unreadable: one stricter retry
    [record] = Judge(backend, EDITSCORE).judge_triplets([(decode_image(candidate(1)["source_image"]["bytes"]),) * 2 + ("make the cup red",)])
    assert record["state"] == "scored" and (record["sc"], record["pq"]) == (6.0, 4.0) and record["o"] == round(math.sqrt(24), 4)
    assert record["sc_scores"] == [20, 15] and record["pq_scores"] == [25, 10]
    assert record["rubric"] == "editscore" and record["score_range"] == 25 and record["prompt_hash"] == rubric.PROMPT_HASH
    assert record["attempts"] == {"sc": 2, "pq": 1}
    assert backend.prompts[2].startswith(rubric.sc_prompt("make the cup red")) and "0-25" in backend.prompts[2]


def test_editscore_from_the_config(monkeypatch):
    stage = make_judge_stage(load_config("gpu", overrides=[{"judge": {"backend": "editscore"}}]))
    assert stage.uses_model and stage.loads == ("qwen2_5_vl",) and stage.resources.num_gpus == 0.5
    backend = stage.judge.backend
    assert (backend.model_ref, backend.adapter_ref) == ("Qwen/Qwen2.5-VL-7B-Instruct", "EditScore/EditScore-7B")
    assert backend.model is None and stage.judge.rubric is EDITSCORE  # nothing loads before setup
    with pytest.raises(ConfigError, match="judge.adapter"):
        make_judge_stage(load_config("gpu", overrides=[{"judge": {"backend": "editscore", "adapter": None}}]))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(ConfigError, match=r"needs the peft package: pip install"):
        make_judge_stage(load_config("gpu", overrides=[{"judge": {"backend": "editscore"}}]))


def test_an_adapter_without_safetensors_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match="adapter_model.safetensors"):
        adapter_folder(str(tmp_path))


# -- the real loading path: tiny Qwen2.5-VL + tiny random LoRA, merged by peft ---------------------


@pytest.fixture(scope="module")
def tiny_editscore(tmp_path_factory):
    pytest.importorskip("peft")
    base = tiny_qwen.build(tmp_path_factory.mktemp("qwen"))
    adapter = build_lora(base, tmp_path_factory.mktemp("lora"))
    backend = EditScoreJudgeBackend(str(base), adapter_ref=str(adapter), max_new_tokens=8)
    backend.setup()
    return base, adapter, backend


def test_tiny_adapter_is_merged_into_the_base(tiny_editscore):
    import torch

    from stages.models.qwen2_5_vl import QwenVL

    base, adapter, backend = tiny_editscore
    assert sorted(p.name for p in adapter.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    merged = dict(backend.model.model.named_parameters())
    plain = dict(QwenVL(str(base)).model.named_parameters())
    assert merged.keys() == plain.keys() and not any("lora_" in name for name in merged)  # merged, unwrapped
    changed = [n for n in plain if not torch.equal(plain[n], merged[n])]
    assert changed and all(n.endswith(("q_proj.weight", "v_proj.weight")) for n in changed)


def test_tiny_editscore_judge_gives_unscored_never_a_number(tiny_editscore):
    _, adapter, backend = tiny_editscore
    assert backend.render(2, "PROMPT") == chat_text(2, "PROMPT")  # asked in EditScore's layout
    out = run_stage(JudgeStage(Judge(backend, EDITSCORE)), [candidate(1)])
    for row in out:
        record, scores = judged(row)
        assert record["state"] == "unscored" and record["reason"]  # random weights answer junk
        assert_no_numbers(record, scores)
        assert record["backend"] == "editscore" and record["adapter"] == str(adapter) and record["rubric"] == "editscore"
        assert record["decoding"] == {"temperature": 0.0, "max_new_tokens": 8, "do_sample": False}


def test_the_dataset_card_names_the_adapter():
    from pipeline.postrun import dataset_card

    summary = dataset_card.new_summary()
    judge = {"state": "scored", "model": "Qwen/Qwen2.5-VL-7B-Instruct", "adapter": "EditScore/EditScore-7B", "prompt_hash": rubric.PROMPT_HASH}
    dataset_card.summarise_rows([{**candidate(1), "judge": schema.dumps(judge)}], summary)
    assert dataset_card.finish_summary(summary)["judge"]["models"] == ["Qwen/Qwen2.5-VL-7B-Instruct + LoRA EditScore/EditScore-7B"]
