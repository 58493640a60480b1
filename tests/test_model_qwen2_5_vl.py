import pytest

from pipeline.core import schema
from pipeline.core.rows import provenance, work
from pipeline.engine.stage_runner import run_stage
from stages.models.mllm_json import extract_json_object, parse_reply, validate
from stages.models.openai_client import ChatResult
from stages.models.qwen2_5_vl import (
    CHOICE_SCHEMA,
    QwenChooseEditStage,
    QwenVL,
    read_edit_choice,
)
from stages.models.tiny import qwen2_5_vl as tiny_qwen
from tests.model_rows import noise_image as _image
from tests.model_rows import pipeline_row

GOOD = '{"objects": ["cat", "cup"], "object": "cup", "change_to": "red"}'
EXISTING = {"object": "cat", "change_to": "blue"}


@pytest.fixture(scope="module")
def tiny_ref(tmp_path_factory):
    return str(tiny_qwen.build(tmp_path_factory.mktemp("qwen2_5_vl")))


@pytest.fixture(scope="module")
def model(tiny_ref):
    return QwenVL(tiny_ref)


def _row(rgb, index=0, state=None):
    return pipeline_row(rgb, index, "color_alteration", work=state)


# -- JSON extraction and validation on hand-written replies ---------------------------------------


def test_extracts_a_plain_object():
    assert extract_json_object(GOOD).value == {"objects": ["cat", "cup"], "object": "cup", "change_to": "red"}


def test_extracts_from_fences_and_prose():
    reply = f"Sure! Here it is:\n```json\n{GOOD}\n```\nLet me know if you need more."
    assert extract_json_object(reply).value["object"] == "cup"
    assert extract_json_object(f"```\n{GOOD}\n```").value["change_to"] == "red"


def test_ignores_trailing_text_and_braces_inside_strings():
    reply = 'Answer: {"objects": ["a {curly} sign"], "object": "a {curly} sign", "change_to": "red"} and {"x": 1}'
    assert extract_json_object(reply).value["objects"] == ["a {curly} sign"]


def test_skips_a_broken_object_to_the_next_good_one():
    reply = 'Draft {"objects": [cat]} then final {"objects": ["cat"], "object": "cat", "change_to": "red"}'
    assert extract_json_object(reply).value["object"] == "cat"


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("", "empty reply"),
        ("The image shows a cat next to a cup.", "no JSON object in the reply"),
        ('{"objects": ["cat", "cup"], "object": "cup", ', "the reply's JSON does not parse"),
        ("[1, 2, 3]", "no JSON object in the reply"),
    ],
)
def test_replies_without_an_object_say_why(reply, reason):
    parsed = extract_json_object(reply)
    assert not parsed.ok and parsed.reason == reason


@pytest.mark.parametrize(
    "value, reason",
    [
        ({"objects": ["cat"], "object": "cat"}, "missing key 'change_to'"),
        ({"objects": "cat", "object": "cat", "change_to": "red"}, "key 'objects': expected a list, got str"),
        ({"objects": [], "object": "cat", "change_to": "red"}, "key 'objects': expected a non-empty list"),
        ({"objects": ["cat", 3], "object": "cat", "change_to": "red"}, "key 'objects': item 1: expected str, got int"),
        ({"objects": ["cat"], "object": None, "change_to": "red"}, "key 'object': expected str, got null"),
        ({"objects": ["cat"], "object": "cat", "change_to": "  "}, "key 'change_to': blank string"),
    ],
)
def test_validation_names_the_first_problem(value, reason):
    parsed = validate(value, CHOICE_SCHEMA)
    assert not parsed.ok and parsed.reason == reason


def test_numbers_and_booleans_are_kept_apart():
    schema_ = {"count": int, "score": float, "keep": bool}
    assert validate({"count": 2, "score": 1, "keep": False}, schema_).ok  # an int is a fine float
    assert validate({"count": True, "score": 0.5, "keep": True}, schema_).reason == "key 'count': expected int, got bool"
    assert validate({"count": 2, "score": "0.5", "keep": True}, schema_).reason == "key 'score': expected float, got str"
    assert parse_reply('```json\n{"count": 1, "score": 0.2, "keep": true, "extra": []}\n```', schema_).value["extra"] == []


def test_edit_choice_must_be_consistent():
    not_listed = '{"objects": ["cat"], "object": "dog", "change_to": "red"}'
    assert "not among the listed objects" in read_edit_choice(not_listed).reason
    assert "not one of the allowed targets" in read_edit_choice(GOOD, allowed_targets=["blue", "green"]).reason
    assert read_edit_choice(GOOD, allowed_targets=["Red", "blue"]).value["change_to"] == "red"
    refused = ChatResult(None, "refused", "refusal: I can't help with that.")
    assert read_edit_choice(refused).reason.startswith("refused")


# -- the stage's retry and fallback, with scripted replies ------------------------------------------


class ScriptedGenerate:
    """Replies per image, looked up by the image's top-left pixel value."""

    def __init__(self, replies):
        self.replies = replies
        self.calls = []

    def __call__(self, images, prompts, max_new_tokens, temperature):
        self.calls.append(list(prompts))
        return [self.replies[int(img[0, 0, 0])].pop(0) for img in images]


def _marked_image(mark):
    rgb = _image(64, 64, mark)
    rgb[0, 0, 0] = mark
    return rgb


def test_invalid_reply_is_retried_once_with_a_stricter_prompt_then_falls_back():
    generate = ScriptedGenerate(
        {
            1: [GOOD],  # right the first time
            2: ["I see a cat.", f"```json\n{GOOD}\n```"],  # prose, then a usable answer
            3: ['{"objects": ["cat"]}', "still not JSON"],  # wrong twice
        }
    )
    stage = QwenChooseEditStage("scripted", generate=generate)
    rows = [_row(_marked_image(m), m, {"edit_choice": EXISTING}) for m in (1, 2, 3)]
    out = run_stage(stage, rows)

    first, retry = generate.calls
    assert len(first) == 3 and len(retry) == 2  # only the two bad answers are asked again
    assert all(p.startswith(stage.prompt) and "could not be used" in p for p in retry)
    assert "no JSON object in the reply" in retry[0] and "missing key 'object'" in retry[1]

    by_mark = {int(r["sample_id"][1:]): r for r in out}
    assert work(by_mark[1])["edit_choice"] == {"object": "cup", "change_to": "red"}
    assert work(by_mark[1])["seen_objects"] == ["cat", "cup"]
    assert work(by_mark[2])["edit_choice"] == {"object": "cup", "change_to": "red"}
    assert provenance(by_mark[2])["stages"][stage.name]["attempts"] == 2

    failed = by_mark[3]
    assert failed["status"] == schema.PENDING  # the row goes on with what it had
    assert work(failed)["edit_choice"] == EXISTING and "seen_objects" not in work(failed)
    [fallback] = provenance(failed)["fallbacks"]
    assert fallback["stage"] == stage.name and "kept the existing choice" in fallback["what"]
    assert provenance(failed)["stages"][stage.name]["rejected_replies"] == [
        "missing key 'object'",
        "no JSON object in the reply",
    ]
    assert "fallbacks" not in provenance(by_mark[1])


def test_allowed_targets_are_in_the_prompt_and_enforced():
    generate = ScriptedGenerate({5: [GOOD, GOOD]})
    stage = QwenChooseEditStage("scripted", target_hint="a new colour", allowed_targets=["blue", "green"], generate=generate)
    assert "one of blue, green" in stage.prompt
    [row] = stage.process_batch([_row(_marked_image(5), 5)])
    assert "edit_choice" not in work(row)  # nothing existed, nothing is invented
    [fallback] = provenance(row)["fallbacks"]
    assert "not one of the allowed targets" in fallback["what"] and "no choice was set" in fallback["what"]


def test_a_generate_function_that_loses_replies_is_an_error():
    stage = QwenChooseEditStage("scripted", generate=lambda images, prompts, n, t: [GOOD])
    with pytest.raises(RuntimeError, match="1 replies for 2 prompts"):
        stage.process_batch([_row(_image(64, 64, 0), 0), _row(_image(64, 64, 1), 1)])


# -- the tiny twin through the production loader ----------------------------------------------------


def test_tiny_qwen_generates_one_string_per_prompt_in_a_padded_batch(model):
    images = [_image(64, 96, 0), _image(112, 80, 1)]
    prompts = ["List the objects.", "List the objects in the image and choose one to edit, as JSON."]
    batched = model.generate(images, prompts, max_new_tokens=6)
    assert len(batched) == 2 and all(isinstance(text, str) for text in batched)
    # left padding must not change what the shorter prompt produces
    assert model.generate(images[:1], prompts[:1], max_new_tokens=6) == batched[:1]
    assert model.processor.tokenizer.padding_side == "left"


def test_tiny_qwen_prompt_puts_the_image_before_the_text(model):
    text = model.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hello"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.index("<|image_pad|>") < text.index("hello")
    assert text.endswith("<|im_start|>assistant\n")
    inputs = model.processor(text=[text], images=[_image(112, 112, 2)], return_tensors="pt")
    image_tokens = int((inputs["input_ids"] == model.model.config.image_token_id).sum())
    assert image_tokens == int(inputs["image_grid_thw"].prod()) // 4  # 2x2 patches merge into one token


def test_tiny_qwen_stage_loads_through_setup_and_falls_back_on_junk(tiny_ref):
    stage = QwenChooseEditStage(tiny_ref, max_new_tokens=4)
    stage.setup()
    rows = [_row(_image(64, 64, 0), 0, {"edit_choice": EXISTING}), _row(_image(112, 96, 1), 1)]
    out = run_stage(stage, rows)
    assert [r["status"] for r in out] == [schema.PENDING] * 2
    info = provenance(out[0])["stages"][stage.name]
    assert info["model"] == tiny_ref and info["dtype"] == "float32" and info["attempts"] == 2
    assert work(out[0])["edit_choice"] == EXISTING  # random weights never produce valid JSON
    assert provenance(out[1])["fallbacks"][0]["stage"] == stage.name
