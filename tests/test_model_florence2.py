import numpy as np
import pytest
import torch

from pipeline.core import schema
from pipeline.core.rows import provenance, work
from pipeline.core.stage import Resources
from pipeline.engine.stage_runner import run_stage
from stages.models.florence2 import (
    MORE_DETAILED_CAPTION,
    OCR_WITH_REGION,
    OD,
    PHRASE_GROUNDING,
    Florence2GroundingStage,
    loc_to_pixel,
    objects_from_boxes,
    parse_generation,
    parse_loc_boxes,
    run_task,
)
from stages.models.tiny import florence2 as tiny_florence2
from stages.models.torch_device import device_and_dtype
from tests.model_rows import noise_image as _image
from tests.model_rows import pipeline_row

TASK = "color_alteration"
DEVICE, DTYPE = device_and_dtype()  # CPU float32 here; CUDA bfloat16 where a GPU is present
GROUNDING_ANSWER = "</s><s>a red car<loc_100><loc_200><loc_300><loc_400>a dog<loc_0><loc_0><loc_999><loc_999></s>"


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    ref = str(tiny_florence2.build(tmp_path_factory.mktemp("florence2")))
    stage = Florence2GroundingStage(ref, (TASK,), max_new_tokens=8, num_beams=1, resources=Resources(batch_size=2))
    stage.setup()
    return stage


def _row(rgb, work_state, task=TASK, index=0):
    return pipeline_row(rgb, index, task, work=work_state)


def test_location_tokens_become_pixel_boxes_on_a_640x480_image():
    boxes = parse_loc_boxes(PHRASE_GROUNDING + GROUNDING_ANSWER, 640, 480)
    assert [label for label, _ in boxes] == ["a red car", "a dog"]
    # bin centres: (n + 0.5) / 1000 of the width or height
    assert boxes[0][1] == pytest.approx([64.32, 96.24, 192.32, 192.24])
    assert boxes[1][1] == pytest.approx([0.32, 0.24, 639.68, 479.76])
    assert loc_to_pixel(5000, 100) == pytest.approx(99.95)  # out-of-range bins clamp to the last


def test_several_boxes_per_label_and_partial_groups():
    text = "<s>cat<loc_0><loc_0><loc_499><loc_499><loc_500><loc_500><loc_999><loc_999><loc_7>plain text</s>"
    boxes = parse_loc_boxes(text, 1000, 100)
    assert [label for label, _ in boxes] == ["cat", "cat"]
    assert boxes[1][1] == pytest.approx([500.5, 50.05, 999.5, 99.95])
    assert parse_loc_boxes("</s><s>no boxes here</s>", 640, 480) == []


def test_processor_parsers_agree_with_the_loc_parser(stage):
    processor = stage.florence.processor
    grounded = parse_generation(processor, GROUNDING_ANSWER, PHRASE_GROUNDING, (640, 480))
    assert grounded["labels"] == ["a red car", "a dog"]
    ours = [box for _, box in parse_loc_boxes(GROUNDING_ANSWER, 640, 480)]
    # the processor truncates bin centres to whole pixels
    assert np.allclose(grounded["bboxes"], ours, atol=1.0)
    detected = parse_generation(processor, "</s><s>car<loc_100><loc_200><loc_300><loc_400></s>", OD, (640, 480))
    assert detected == {"bboxes": [[64, 96, 192, 192]], "labels": ["car"]}
    quads = "</s><s>SALE<loc_100><loc_200><loc_300><loc_200><loc_300><loc_400><loc_100><loc_400></s>"
    ocr = parse_generation(processor, quads, OCR_WITH_REGION, (640, 480))
    assert ocr == {"quad_boxes": [[64, 96, 192, 96, 192, 192, 64, 192]], "labels": ["SALE"]}
    caption = parse_generation(processor, "</s><s>A cat sits on a mat.</s>", MORE_DETAILED_CAPTION, (640, 480))
    assert caption == "A cat sits on a mat."


def test_box_tasks_fall_back_to_the_loc_parser_when_the_processor_cannot_parse():
    class Unconfigured:
        def post_process_generation(self, text, task, image_size):
            raise ValueError("Unsupported parse task: phrase_grounding")

    parsed = parse_generation(Unconfigured(), GROUNDING_ANSWER, PHRASE_GROUNDING, (640, 480))
    assert parsed["labels"] == ["a red car", "a dog"]
    assert parsed["bboxes"][0] == pytest.approx([64.32, 96.24, 192.32, 192.24])
    with pytest.raises(ValueError):
        parse_generation(Unconfigured(), "</s>", MORE_DETAILED_CAPTION, (640, 480))


def test_corner_boxes_become_clipped_coco_boxes():
    objects = objects_from_boxes(
        [[10, 20, 110, 70], [-5, 30, 40, 500], [50, 50, 51, 90], [1, 1, 30, 30]],
        ["cup", "chair", "sliver", " "],
        width=200,
        height=100,
    )
    assert objects == [
        {"label": "cup", "bbox": [10.0, 20.0, 100.0, 50.0], "source": "florence2"},
        {"label": "chair", "bbox": [0.0, 30.0, 40.0, 70.0], "source": "florence2"},
    ]


def test_tiny_twin_loads_and_runs_every_task(stage):
    florence = stage.florence
    assert (florence.device, florence.dtype) == (DEVICE, DTYPE) and florence.model.dtype == DTYPE
    assert not florence.model.training
    rgb = _image(96, 128, 0)
    inputs = florence.processor(text=["<OD>"], images=[rgb], return_tensors="pt").to(DEVICE, DTYPE)
    image_tokens = (inputs["input_ids"] == florence.model.config.image_token_id).sum().item()
    assert image_tokens == tiny_florence2.image_seq_length() == florence.processor.num_image_tokens
    with torch.inference_mode():
        out = florence.model(**inputs, decoder_input_ids=torch.tensor([[2, 0]], device=DEVICE))
    assert out.logits.shape == (1, 2, len(florence.processor.tokenizer))
    with torch.inference_mode():
        features = florence.model.get_image_features(inputs["pixel_values"]).pooler_output
    assert features.shape == (1, image_tokens, florence.model.config.text_config.d_model)
    images = [rgb, _image(64, 80, 1)]
    for task, text_input in [(OD, None), (PHRASE_GROUNDING, "a red car")]:
        answers = run_task(florence, images, task, text_input, max_new_tokens=8, num_beams=1)
        assert len(answers) == 2 and all(set(a) == {"bboxes", "labels"} for a in answers)
    ocr = run_task(florence, images, OCR_WITH_REGION, max_new_tokens=8, num_beams=1)
    assert all(set(a) == {"quad_boxes", "labels"} for a in ocr)
    captions = run_task(florence, images, MORE_DETAILED_CAPTION, max_new_tokens=8, num_beams=1)
    assert all(isinstance(c, str) for c in captions)


def test_stage_writes_boxes_in_each_rows_working_pixels(stage, monkeypatch):
    asked = []

    def answers(images, prompts):
        asked.extend((img.shape[:2], p) for img, p in zip(images, prompts))
        replies = {
            PHRASE_GROUNDING + "cup": "</s><s>cup<loc_250><loc_250><loc_750><loc_750></s>",
            PHRASE_GROUNDING + "saucer": "</s><s>saucer</s>",
            OD: "</s><s>dog<loc_0><loc_500><loc_499><loc_999>cat<loc_500><loc_0><loc_999><loc_499></s>",
        }
        return [replies[p] for p in prompts]

    monkeypatch.setattr(stage, "generate", answers)
    grounded = _row(_image(96, 128, 2), {"phrases": ["cup", "saucer"], "objects": None}, index=0)
    detected = _row(_image(64, 80, 3), {"objects": None}, index=1)
    out = {r["_unit"]: r for r in run_stage(stage, [grounded, detected])}
    assert ((96, 128), PHRASE_GROUNDING + "cup") in asked and ((64, 80), OD) in asked
    cup = work(out["0:0:" + TASK])["objects"]
    assert cup == [{"label": "cup", "bbox": pytest.approx([32.08, 24.06, 64.0, 48.0], abs=1.0), "source": "florence2"}]
    animals = work(out["0:1:" + TASK])["objects"]
    assert [o["label"] for o in animals] == ["dog", "cat"]
    assert animals[0]["bbox"] == pytest.approx([0, 32, 40, 32], abs=1.0)
    assert animals[1]["bbox"] == pytest.approx([40, 0, 40, 32], abs=1.0)
    info = provenance(out["0:0:" + TASK])["stages"]["florence2_grounding"]
    assert info["prompts"] == [PHRASE_GROUNDING + "cup", PHRASE_GROUNDING + "saucer"] and info["found"] == 1


def test_stage_keeps_annotations_when_the_model_finds_nothing(stage):
    annotated = [{"label": "cup", "bbox": [10, 10, 30, 30]}]
    rows = [
        _row(_image(96, 128, 4), {"objects": annotated}, index=0),
        _row(_image(64, 64, 5), {"objects": annotated}, task="text_editing", index=1),
    ]
    out = {r["task"]: r for r in run_stage(stage, rows)}
    row = out[TASK]
    assert row["status"] == schema.PENDING
    assert work(row)["objects"] == annotated  # random weights answer with no box
    prov = provenance(row)
    assert prov["fallbacks"][0]["stage"] == "florence2_grounding"
    assert prov["stages"]["florence2_grounding"]["dtype"] == str(DTYPE).removeprefix("torch.")
    assert prov["stages"]["florence2_grounding"]["model"] == stage.model_ref
    assert "florence2_grounding" not in provenance(out["text_editing"]).get("stages", {})
