"""The captioner (filters/caption/) against a fake OpenAI-compatible server scripted per row, and
the tiny Qwen twin: good answers land verbatim, every kind of bad answer or failed request ends as
the template instruction with its reason, rejected rows are never asked about, the key never
reaches a row."""

import json

import numpy as np
import pytest

from filters.caption.reply import read_caption
from filters.caption.stage import (
    REJECTED_BY_GATES,
    TEMPLATE_PROFILE,
    CaptionStage,
    make_caption_stage,
)
from filters.caption.terms import key_terms
from filters.judge.backends import OpenAIJudgeBackend, QwenJudgeBackend
from pipeline.core import schema
from pipeline.core.config import ConfigError, load_config
from pipeline.core.image_io import encode_png
from pipeline.engine.stage_list import caption_stage
from pipeline.engine.stage_runner import run_stage
from stages.models.openai_client import OpenAIChatClient
from stages.models.tiny import qwen2_5_vl as tiny_qwen
from tests.fake_captioner import answer
from tests.fake_openai_server import FakeOpenAIServer
from tests.model_rows import gradient_photo

SECRET = "sk-test-never-in-a-row-0123456789"
TEMPLATE_EN, TEMPLATE_ZH = "Make the {} red.", "把{}变成红色。"


def row(obj, status=schema.OK, zh=None):
    """A colour candidate whose object names it to the scripted server."""
    source = gradient_photo(48, 64)
    target = source.copy()
    target[..., 0] = 200
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:40] = 255
    zh = zh or f"{obj}物"
    edit = {"type": "color_alteration", "object": obj, "slots_en": {"object": obj, "color": "red"}, "slots_zh": {"object": zh, "color": "红色"}}
    return {
        "sample_id": f"id-{obj}",
        "task": "color_alteration",
        "status": status,
        "source_image": schema.image_value(encode_png(source)),
        "target_image": schema.image_value(encode_png(target)),
        "mask": schema.image_value(encode_png(mask)),
        "edit": schema.dumps(edit),
        "instruction_en": TEMPLATE_EN.format(obj),
        "instruction_zh": TEMPLATE_ZH.format(zh),
        "provenance": schema.dumps({}),
    }


def good(obj, **changes):
    value = answer({"task": "color_alteration", "terms": {"object": {"en": obj, "zh": f"{obj}物"}, "color": {"en": "red", "zh": "红色"}}})
    return "raw:" + json.dumps({**value, **changes}, ensure_ascii=False)


def served(server, timeout_s=5.0, retries=2, primary="mixed"):
    client = OpenAIChatClient(server.base_url, "fake-captioner", timeout_s=timeout_s, max_retries=retries, backoff_s=0.01, max_workers=4)
    return CaptionStage(OpenAIJudgeBackend(client, revision="r1"), primary)


def caption(row_):
    prov = schema.loads(row_["provenance"])
    return prov["stages"]["caption"], prov.get("fallbacks", [])


def key(obj):
    return f'"en": "{obj}"'  # the object's place in the prompt's metadata: one script per row


# per row (object): the server's behaviours, and the reason its fallback must give (None: captioned)
SCRIPT = {
    "kettle": (["compose"], None),
    "lamp": (["429", "compose"], None),
    "vase": (["malformed", "compose"], None),  # fixed by the stricter retry
    "chair": ([good("chair", imperative_zh="Make the chair red.")], "imperative_zh is not Chinese"),
    "bottle": ([good("bottle", imperative_en="Make the jug red.")], 'imperative_en does not name the object "bottle"'),
    "clock": (["refusal"], "refused"),
    "bench": (["raw:{\"imperative_en\": \"Make the bench"], "does not parse"),
    "kite": (["slow"], "timeout"),
    "sofa": (["500"], "http_error: HTTP 500"),
    "drum": (["raw:{\"imperative_en\": \"I'm sorry, but I can't help with that request.\"}"], "missing key"),
    "mug": (["echo_auth"], "http_error: HTTP 401"),
}


@pytest.fixture(scope="module")
def scripted():
    script = {key(obj): plan for obj, (plan, _) in SCRIPT.items()}
    rows = [row(obj) for obj in SCRIPT] + [row("helmet", schema.REJECTED)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", SECRET)
        with FakeOpenAIServer(script, slow_s=1.0, retry_after="0.01", default="compose") as server:
            out = run_stage(served(server, timeout_s=0.3, retries=1), rows)
    return {r["edit"] and schema.loads(r["edit"])["object"]: r for r in out}, server


@pytest.mark.parametrize("obj", [o for o, (_, reason) in SCRIPT.items() if reason is None])
def test_good_answers_land_verbatim(scripted, obj):
    rows, _ = scripted
    r = rows[obj]
    meta = {"task": "color_alteration", "terms": {"color": {"en": "red", "zh": "红色"}, "object": {"en": obj, "zh": f"{obj}物"}}}
    expected = answer(meta)
    register = r["instruction_register"]
    assert r["instruction_source"] == "mllm" and register in ("imperative", "descriptive")
    assert r["instruction_en"] == expected[f"{register}_en"] and r["instruction_zh"] == expected[f"{register}_zh"]
    stored = schema.loads(r["instructions"])
    assert stored["registers"]["imperative"] == {"en": expected["imperative_en"], "zh": expected["imperative_zh"]}
    assert stored["registers"]["descriptive"]["en"] == expected["descriptive_en"]
    assert stored["template"] == {"en": TEMPLATE_EN.format(obj), "zh": TEMPLATE_ZH.format(f"{obj}物")}
    assert r["source_caption"] == expected["source_caption"] and r["target_caption"] == expected["target_caption"]
    record, fallbacks = caption(r)
    assert fallbacks == [] and record["instruction_source"] == "mllm" and record["model"] == "fake-captioner"


@pytest.mark.parametrize("obj", [o for o, (_, reason) in SCRIPT.items() if reason is not None])
def test_bad_answers_keep_the_template_with_the_reason(scripted, obj):
    rows, _ = scripted
    r = rows[obj]
    assert r["instruction_en"] == TEMPLATE_EN.format(obj) and r["instruction_zh"] == TEMPLATE_ZH.format(f"{obj}物")
    assert r["instruction_source"] == "template" and r["instruction_register"] == "imperative"
    assert r["source_caption"] is None and r["target_caption"] is None
    record, fallbacks = caption(r)
    reason = SCRIPT[obj][1]
    assert reason in record["fallback_reason"] and len(fallbacks) == 1 and reason in fallbacks[0]["what"]
    assert "kept the template instruction" in fallbacks[0]["what"]
    # a readable but wrong answer earns one stricter retry; a failed request does not
    retried = not any(kind in reason for kind in ("refused", "timeout", "http_error"))
    assert record["attempts"] == (2 if retried else 1)


def test_the_429_was_retried_and_the_stricter_prompt_says_why(scripted):
    rows, server = scripted
    assert caption(rows["lamp"])[0]["requests"] == 2
    vase = [p for p in server.prompts() if key("vase") in p]
    assert len(vase) == 2 and "could not be used" in vase[1] and "could not be used" not in vase[0]


def test_rejected_rows_are_not_captioned(scripted):
    rows, server = scripted
    helmet = rows["helmet"]
    assert not any(key("helmet") in p for p in server.prompts())
    assert helmet["instruction_source"] == "template" and caption(helmet)[0]["kept_because"] == REJECTED_BY_GATES


def test_the_server_sees_source_target_and_mask_at_temperature_zero(scripted):
    _, server = scripted
    body = server.requests[0]["body"]
    parts = body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"] and body["temperature"] == 0.0


def test_the_key_never_reaches_a_row(scripted):
    rows, server = scripted
    assert any(SECRET in r["headers"].get("Authorization", "") for r in server.requests)  # it was sent
    assert SECRET not in json.dumps(list(rows.values()), default=str)
    assert "[redacted]" in caption(rows["mug"])[0]["fallback_reason"]


def test_no_instruction_is_ever_a_refusal_or_an_error(scripted):
    rows, _ = scripted
    for r in rows.values():
        for text in (r["instruction_en"], r["instruction_zh"]):
            assert not any(word in text.lower() for word in ("sorry", "error", "http", "can't", "timeout"))


# -- validation --------------------------------------------------------------------------------------


def test_validation_rules():
    terms = key_terms("color_alteration", {"slots_en": {"object": "cup", "color": "red"}, "slots_zh": {"object": "杯子", "color": "红色"}})
    base = json.loads(good("cup")[4:].replace("cup物", "杯子"))
    assert read_caption(json.dumps(base, ensure_ascii=False), terms).ok
    # a colour may drop its 色 in Chinese; a plural object is still the object
    assert read_caption(json.dumps({**base, "imperative_zh": "把杯子变红。", "imperative_en": "Make the cups red."}, ensure_ascii=False), terms).ok
    for changes, reason in [
        ({"imperative_en": base["descriptive_en"]}, "the same sentence"),
        ({"imperative_en": "Make the cup red " + "please " * 30}, "characters"),
        ({"source_caption": "一只杯子放在桌子上。"}, "source_caption has Chinese"),
        ({"imperative_zh": "把cup变成red的color。"}, "not Chinese"),
        ({"descriptive_zh": "抱歉，我无法描述这张图片中的杯子红色。"}, "refusal"),
    ]:
        parsed = read_caption(json.dumps({**base, **changes}, ensure_ascii=False), terms)
        assert not parsed.ok and reason in parsed.reason, (changes, parsed.reason)


def test_new_words_in_another_script_are_required_verbatim_and_do_not_break_the_language_check():
    edit = {"slots_en": {"old": "OPEN", "new": "营业中", "where": "sign"}, "slots_zh": {"old": "OPEN", "new": "营业中", "where": "招牌"}}
    terms = key_terms("text_modification", edit)
    reply = {
        "imperative_en": 'Change "OPEN" to "营业中".', "imperative_zh": "把“OPEN”改成“营业中”。",
        "descriptive_en": 'Replace the word "OPEN" on the sign with "营业中" in the same font.',
        "descriptive_zh": "将招牌上的“OPEN”替换为“营业中”，字体不变。",
        "source_caption": "A shop sign that reads OPEN.", "target_caption": "The same shop sign with new words.",
    }
    assert read_caption(json.dumps(reply, ensure_ascii=False), terms).ok
    missing = {**reply, "imperative_zh": "把文字改成新的。"}
    assert "does not name the new" in read_caption(json.dumps(missing, ensure_ascii=False), terms).reason


# -- profiles and the config -------------------------------------------------------------------------


def test_cpu_profile_keeps_templates_and_says_so_on_every_row():
    stage = make_caption_stage(load_config("cpu"))
    assert stage.backend is None and not stage.uses_model
    out = run_stage(stage, [row("cup"), row("pan", schema.REJECTED)])
    for r in out:
        assert r["instruction_source"] == "template" and r["instruction_en"].startswith("Make the")
        assert caption(r)[0]["kept_because"] in (TEMPLATE_PROFILE, REJECTED_BY_GATES)
    assert caption(out[0])[0]["kept_because"] == TEMPLATE_PROFILE


def test_captioner_from_the_config():
    tiny = make_caption_stage(load_config("tiny"))
    assert tiny.uses_model and tiny.loads == ("qwen2_5_vl",)
    served_ = make_caption_stage(load_config("tiny", overrides=[{"captioner": {"backend": "openai", "url": "http://127.0.0.1:9/v1", "model": "m"}}]))
    assert not served_.uses_model and served_.loads == () and served_.resources.num_gpus == 0
    with pytest.raises(ConfigError, match="captioner.url"):
        caption_stage(load_config("tiny", overrides=[{"captioner": {"backend": "openai"}}]))
    assert tiny.statuses == (schema.OK, schema.REJECTED)  # tiny's noise fails every gate
    assert make_caption_stage(load_config("gpu")).statuses == (schema.OK,)
    with pytest.raises(ConfigError, match="primary_register"):
        caption_stage(load_config("cpu", overrides=[{"captioner": {"primary_register": "poetic"}}]))


# -- the tiny Qwen twin: junk in, templates out ----------------------------------------------------


def test_tiny_qwen_junk_always_falls_back(tmp_path):
    stage = CaptionStage(QwenJudgeBackend(str(tiny_qwen.build(tmp_path / "qwen")), max_new_tokens=8))
    rows = run_stage(stage, [row("cup"), row("pan")])
    assert stage.uses_model
    for r in rows:
        assert r["instruction_source"] == "template" and r["instruction_en"] == TEMPLATE_EN.format(schema.loads(r["edit"])["object"])
        record, fallbacks = caption(r)
        assert record["backend"] == "qwen" and record["fallback_reason"] and len(fallbacks) == 1
