import numpy as np
import pytest

from filters.clip_similarity import (
    ClipSimilarityStage,
    clip_gate_results,
    directional_similarity,
    edit_captions,
)
from filters.common_gates import CommonGatesStage
from filters.dino_similarity import DinoSimilarityStage, dino_gate_results, timm_name
from pipeline.core import config, schema
from pipeline.core.image_io import encode_png
from pipeline.core.rows import provenance
from pipeline.engine.stage_runner import run_stage
from stages.models.tiny import clip as tiny_clip
from stages.models.tiny import dinov2 as tiny_dinov2
from tests.model_rows import gradient_photo, noise_image

LIMITS = config.load_config("cpu")["common_gates"]["model"]


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    stage = DinoSimilarityStage(str(tiny_dinov2.build(tmp_path_factory.mktemp("dinov2"))), limits=LIMITS)
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    stage = ClipSimilarityStage(str(tiny_clip.build(tmp_path_factory.mktemp("clip"))), limits=LIMITS)
    stage.setup()
    return stage


def _row(source, target, status=schema.OK, task="color_alteration", edit=None, sample_id="s"):
    return {
        "sample_id": sample_id,
        "task": task,
        "status": status,
        "source_image": schema.image_value(encode_png(source)),
        "target_image": schema.image_value(encode_png(target)),
        "mask": None,
        "edit": schema.dumps(edit or {"color": "blue", "object": "cup", "slots_en": {"color": "blue", "object": "cup"}}),
        "instruction_en": "Make the cup blue.",
        "scores": None,
        "provenance": None,
    }


def _gates(row):
    return schema.loads(row["scores"])["gates"]


def test_dino_twin_loads_through_timm_and_scores_in_range(dino):
    a, b = noise_image(64, 80, 0), noise_image(48, 48, 1)
    rows = [_row(a, b, sample_id="pair"), _row(a, a.copy(), schema.REJECTED, sample_id="same"), _row(a, b, schema.ERROR, sample_id="err")]
    out = {r["sample_id"]: r for r in dino.process_batch([dict(r) for r in rows])}
    pair = _gates(out["pair"])["dino_similarity"]["value"]
    assert -1.0 <= pair <= 1.0
    same = _gates(out["same"])
    assert same["dino_similarity"]["value"] == pytest.approx(1.0, abs=1e-3)
    assert same["dino_noop"]["passed"] is False  # an unchanged target is a no-op
    assert out["same"]["status"] == schema.REJECTED
    assert out["err"]["scores"] is None  # rows without a candidate are not scored
    info = provenance(out["pair"])["stages"]["dino_gate"]
    assert info["model"] == dino.model_ref and info["dtype"] == "float32"
    scores = schema.loads(out["pair"]["scores"])
    assert scores["gate_backend"] == "model" and {"dino_similarity", "dino_noop"} <= set(scores["gates_ran"])


def test_dino_features_follow_the_models_own_forward(dino):
    import torch

    images = [noise_image(40, 40, 3), gradient_photo(40, 56)]
    pixels = dino.encoder._pixels(images)
    with torch.no_grad():
        expected = dino.encoder.model(pixels).numpy()
    assert np.allclose(dino.encoder.embed(images), expected, atol=1e-5)
    assert expected.shape == (2, dino.encoder.model.num_features)


def test_timm_names_refuse_folders_without_safetensors(tmp_path):
    assert timm_name("timm/vit_small_patch14_dinov2.lvd142m", "abc") == "hf-hub:timm/vit_small_patch14_dinov2.lvd142m@abc"
    with pytest.raises(FileNotFoundError):
        timm_name(str(tmp_path))


def test_dino_thresholds_from_the_protocol():
    assert LIMITS["min_dino"] == 0.4 and LIMITS["max_dino"] == 0.95
    verdict = lambda s: [g.passed for g in dino_gate_results(s, LIMITS)]  # noqa: E731
    assert verdict(0.7) == [True, True]
    assert verdict(0.3) == [False, True]
    assert verdict(0.97) == [True, False]


def test_clip_twin_loads_through_transformers_and_scores_in_range(clip):
    a, b = noise_image(64, 80, 0), noise_image(48, 48, 1)
    rows = [_row(a, b, sample_id="pair"), _row(a, a.copy(), sample_id="same"), _row(b, a, schema.PENDING, sample_id="pending")]
    out = {r["sample_id"]: r for r in run_stage(clip, rows)}  # pending rows go through the runner as it is today
    for row in out.values():
        gates = _gates(row)
        assert -1.0 <= gates["clip_image_similarity"]["value"] <= 1.0
        assert -1.0 <= gates["clip_direction"]["value"] <= 1.0
    same = _gates(out["same"])
    assert same["clip_image_similarity"]["value"] == pytest.approx(1.0, abs=1e-3)
    assert same["clip_direction"]["value"] == pytest.approx(0.0, abs=1e-3)  # no change has no direction
    assert out["same"]["status"] == schema.REJECTED
    info = provenance(out["pair"])["stages"]["clip_gate"]
    assert info["captions"] == ["a photo of a cup", "a photo of a blue cup"]
    assert info["model"] == clip.model_ref and info["dtype"] == "float32"


def test_model_gates_join_the_pixel_gates_on_one_row(clip):
    source = gradient_photo(96, 128)
    target = source.copy()
    target[20:60, 30:90] = [30, 60, 200]
    row = CommonGatesStage.from_config(config.load_config("cpu")).process_row(_row(source, target, task="tone_transformation", edit={"kind": "grade"}))
    [row] = clip.process_batch([row])
    scores = schema.loads(row["scores"])
    assert scores["gate_backend"] == "model"
    assert {"clip_direction", "shift", "target_std"} <= set(scores["gates_ran"])


def test_directional_similarity_on_hand_written_embeddings():
    src_img, tgt_img = np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 0.0]])
    along, against = np.array([[0.0, 0.0, 0.0]]), np.array([[0.0, 2.0, 0.0]])
    assert directional_similarity(src_img, tgt_img, along, against)[0] == pytest.approx(1.0)
    assert directional_similarity(src_img, tgt_img, against, along)[0] == pytest.approx(-1.0)
    assert directional_similarity(src_img, src_img, along, against)[0] == 0.0
    assert [g.passed for g in clip_gate_results(0.8, 0.25, LIMITS)] == [True, True]
    assert [g.passed for g in clip_gate_results(0.6, 0.1, LIMITS)] == [False, False]


@pytest.mark.parametrize(
    "task,edit,expected",
    [
        ("color_alteration", {"color": "red", "object": "cup", "slots_en": {"color": "red", "object": "cup"}}, ("a photo of a cup", "a photo of a red cup")),
        ("material_modification", {"material": "wood", "object": "vase"}, ("a photo of a vase", "a photo of a vase made of wood")),
        ("subject_remove", {"object": "spoon"}, ("a photo with a spoon", "a photo without a spoon")),
        ("subject_add", {"object": "spoon"}, ("a photo without a spoon", "a photo with a spoon")),
        ("subject_replace", {"object": "helmet", "slots_en": {"old": "helmet", "new": "a cup"}}, ("a photo of a helmet", "a photo of a cup")),
        ("background_change", {"subject": "cat", "slots_en": {"scene": "a lawn", "subject": "cat"}}, ("a photo of a cat", "a photo of a cat in front of a lawn")),
        ("text_modification", {"old_text": "COFFEE", "new_text": "JUICE"}, ('a photo with the text "COFFEE"', 'a photo with the text "JUICE"')),
        ("style_transfer", {"slots_en": {"style": "a watercolour painting"}}, ("a photo", "a watercolour painting")),
        ("tone_transformation", {"slots_en": {"look": "a warm look"}}, ("a photo", "a photo, a warm look")),
        ("motion_change", {}, ("a photo", "Make it jump.")),
    ],
)
def test_captions_come_from_the_edit(task, edit, expected):
    assert edit_captions(task, edit, "Make it jump.") == expected
