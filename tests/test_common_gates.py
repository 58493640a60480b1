import io

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from filters import image_stats
from filters.common_gates import CommonGatesStage, kept_region, merged_limits
from filters.gate_limits import edit_kind
from filters.gates import GateResult, record_gates
from pipeline.core import config, schema
from pipeline.core.image_io import encode_png
from stages.lab_recolor import recolor
from stages.vocabulary import COLORS
from tasks.style.effects import RENDERERS
from tasks.tone.render import render_tone

CFG = config.load_config("cpu")


@pytest.fixture(scope="module")
def stage():
    return CommonGatesStage.from_config(CFG)


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(skimage.data.coffee()[::2, ::2])  # 200 x 300


@pytest.fixture(scope="module")
def other_photo():
    return cv2.resize(skimage.data.astronaut(), (300, 200), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def cup_mask(photo):
    mask = np.zeros(photo.shape[:2], bool)
    mask[30:125, 100:190] = True
    return mask


@pytest.fixture(scope="module")
def recoloured(photo, cup_mask):
    return recolor(photo, cup_mask, COLORS["blue"][2], 0.3, 3)


def _row(task, source, target, mask=None, edit=None, status=schema.OK):
    return {
        "sample_id": "s",
        "task": task,
        "status": status,
        "source_image": schema.image_value(encode_png(source)),
        "target_image": schema.image_value(encode_png(target)),
        "mask": schema.image_value(encode_png(mask.astype(np.uint8) * 255)) if mask is not None else None,
        "edit": schema.dumps(edit or {}),
        "scores": None,
    }


def _gates(stage, row):
    out = stage.process_row(row)
    return out, schema.loads(out["scores"])["gates"]


def _failed(gates):
    return {name for name, g in gates.items() if not g["passed"]}


# ---- defects -----------------------------------------------------------------------------------


def _shift(rgb, fraction=0.03):
    height, width = rgb.shape[:2]
    d = fraction * max(height, width)
    return cv2.warpAffine(rgb, np.float32([[1, 0, d], [0, 1, -0.5 * d]]), (width, height), borderMode=cv2.BORDER_REFLECT)


def _rescale(rgb, factor=1.08):
    height, width = rgb.shape[:2]
    big = cv2.resize(rgb, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_LINEAR)
    y, x = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[y : y + height, x : x + width])


def _noise(rgb, sigma=25.0):
    return np.clip(rgb + np.random.default_rng(0).normal(0, sigma, rgb.shape), 0, 255).astype(np.uint8)


def _jpeg(rgb, quality=8):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# defect -> (damage to the good target given another photo, the gate that must catch it on a
# local edit, and on a whole-picture edit)
DEFECTS = {
    "blank": (lambda t, o: np.full_like(t, 128), "target_std", "target_std"),
    "noop": (None, "target_changed", "target_changed"),
    "shifted": (lambda t, o: _shift(t), "shift", "shift"),
    "rescaled": (lambda t, o: _rescale(t), "structure_agreement", "edge_agreement"),
    "noise": (lambda t, o: _noise(t), "noise_increase", "noise_increase"),
    "blur": (lambda t, o: cv2.GaussianBlur(t, (0, 0), 2.0), "sharpness_ratio", "sharpness_ratio"),
    "jpeg": (lambda t, o: _jpeg(t), "blockiness_increase", "blockiness_increase"),
    "unrelated": (lambda t, o: o, "structure_agreement", "edge_agreement"),
}


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_each_gate_rejects_its_defect_on_a_local_edit(stage, photo, other_photo, cup_mask, recoloured, kind):
    damage, gate, _ = DEFECTS[kind]
    target = photo.copy() if damage is None else damage(recoloured, other_photo)
    out, gates = _gates(stage, _row("color_alteration", photo, target, cup_mask))
    assert gate in _failed(gates)
    assert out["status"] == schema.REJECTED and gate in out["reason"]


@pytest.mark.parametrize("kind", sorted(DEFECTS))
def test_each_gate_rejects_its_defect_on_a_global_edit(stage, photo, other_photo, kind):
    _, toned = render_tone(photo, "warm", 3)
    damage, _, gate = DEFECTS[kind]
    target = photo.copy() if damage is None else damage(toned, other_photo)
    _, gates = _gates(stage, _row("tone_transformation", photo, target, edit={"kind": "grade", "name": "warm"}))
    assert gate in _failed(gates)


def test_a_good_local_edit_passes_every_common_gate(stage, photo, cup_mask, recoloured):
    out, gates = _gates(stage, _row("color_alteration", photo, recoloured, cup_mask))
    assert out["status"] == schema.OK and not _failed(gates)
    scores = schema.loads(out["scores"])
    assert scores["gate_backend"] == "pixel"
    assert set(scores["gates_ran"]) == set(gates)
    assert {"shift", "sharpness_ratio", "noise_increase", "blockiness_increase", "structure_agreement", "target_std", "target_changed"} <= set(gates)
    assert "edge_agreement" not in gates  # the whole-picture structure rule is for whole-picture edits
    # the local edit is judged outside its mask: the recoloured cup does not count as changed structure
    assert gates["structure_agreement"]["value"] > 0.99


def test_a_local_edit_is_judged_outside_its_mask_and_inside_only_by_the_local_gates(stage, photo, cup_mask):
    """Noise confined to the mask leaves the outside gates passing; only the inside gate
    (filters/local_gates.py) sees it."""
    target = photo.copy()
    target[cup_mask] = _noise(photo)[cup_mask]
    _, gates = _gates(stage, _row("color_alteration", photo, target, cup_mask))
    assert _failed(gates) == {"inside_noise_increase", "inside_colour_noise_increase"}  # noise drawn per channel
    _, whole = _gates(stage, _row("color_alteration", photo, _noise(photo), cup_mask))
    assert "noise_increase" in _failed(whole)


@pytest.mark.parametrize("grade", ["warm", "black_and_white", "film", "hdr", "darker", "less_contrast", "more_contrast"])
def test_tone_grades_pass(stage, photo, grade):
    _, target = render_tone(photo, grade, 1)
    out, gates = _gates(stage, _row("tone_transformation", photo, target, edit={"kind": "grade", "name": grade}))
    assert not _failed(gates), gates


@pytest.mark.parametrize("restoration", ["dehaze", "derain", "low_light", "denoise"])
def test_restorations_with_a_damaged_source_are_not_rejected(stage, photo, restoration):
    source, target = render_tone(photo, restoration, 2)
    out, gates = _gates(stage, _row("tone_transformation", source, target, edit={"kind": "restore", "name": restoration}))
    assert not _failed(gates), gates
    # and a blurred restoration still fails
    blurred = cv2.GaussianBlur(target, (0, 0), 2.0)
    _, bad = _gates(stage, _row("tone_transformation", source, blurred, edit={"kind": "restore", "name": restoration}))
    assert "sharpness_ratio" in _failed(bad)


@pytest.mark.parametrize("style", sorted(RENDERERS))
def test_classical_styles_pass_and_blurred_or_noisy_ones_do_not(stage, photo, style):
    target = RENDERERS[style](photo)
    _, gates = _gates(stage, _row("style_transfer", photo, target, edit={"style": style}))
    assert not _failed(gates), gates
    _, shifted = _gates(stage, _row("style_transfer", photo, _shift(target)))
    assert "shift" in _failed(shifted)


@pytest.mark.parametrize("style", ["pencil_sketch", "colored_pencil", "line_art", "cartoon", "pixel_art"])
def test_a_lightly_blurred_drawing_is_rejected_by_its_styles_own_limit(stage, photo, style):
    """Lines, strokes and blocks keep the photo's detail: their limit is their style's own
    (common_gates.per_kind), far above the task's, which a watercolour's softness sets."""
    blurred = cv2.GaussianBlur(RENDERERS[style](photo), (0, 0), 1.0)
    _, gates = _gates(stage, _row("style_transfer", photo, blurred, edit={"style": style}))
    assert "sharpness_ratio" in _failed(gates)
    assert gates["sharpness_ratio"]["threshold"] == 0.5


def test_a_style_name_is_a_kind_only_for_restyles():
    assert edit_kind("style_transfer", {"style": "pixel_art"}) == "pixel_art"
    assert edit_kind("text_modification", {"style": "pixel_art"}) is None  # another task's "style" is not a restyle
    assert edit_kind("tone_transformation", {"kind": "restore", "style": "x"}) == "restore"


def test_the_style_limits_still_catch_blur_noise_and_an_unrelated_picture(stage, photo, other_photo):
    target = RENDERERS["watercolor"](photo)
    for damaged, gate in [
        (cv2.GaussianBlur(target, (0, 0), 2.0), "sharpness_ratio"),
        (_noise(target), "noise_increase"),
        (RENDERERS["watercolor"](other_photo), "edge_agreement"),
    ]:
        _, gates = _gates(stage, _row("style_transfer", photo, damaged))
        assert gate in _failed(gates)


def test_size_and_small_targets_are_refused_before_any_comparison(stage, photo):
    _, gates = _gates(stage, _row("tone_transformation", photo, photo[:100, :150].copy(), edit={"kind": "grade"}))
    assert _failed(gates) == {"target_size_mismatch"}
    assert "shift" not in gates  # nothing compared pixel by pixel
    small = photo[:48, :60].copy()
    _, gates = _gates(stage, _row("tone_transformation", small, render_tone(small, "warm", 0)[1], edit={"kind": "grade"}))
    assert "target_min_side" in _failed(gates)


def test_a_rejected_row_stays_rejected_and_gains_the_common_values(stage, photo, recoloured, cup_mask):
    row = _row("color_alteration", photo, recoloured, cup_mask, status=schema.PENDING)
    record_gates(row, [GateResult.at_most("hue_error_deg", 40.0, 25.0)])
    assert row["status"] == schema.REJECTED
    out, gates = _gates(stage, row)
    assert out["status"] == schema.REJECTED and "hue_error_deg" in out["reason"]
    assert "structure_agreement" in gates and gates["structure_agreement"]["passed"]


def test_rows_without_a_candidate_are_left_alone(stage, photo):
    row = _row("color_alteration", photo, photo, status=schema.ERROR)
    assert stage.process_row(dict(row)) == row
    assert schema.PENDING in stage.accepts and schema.REJECTED in stage.accepts and schema.ERROR not in stage.accepts


def test_limits_merge_task_then_kind_and_null_turns_a_gate_off(photo):
    limits = merged_limits({"a": 1, "b": 1, "c": 1}, {"t": {"b": 2, "c": 2}}, {"restore": {"c": 3}}, "t", "restore")
    assert limits == {"a": 1, "b": 2, "c": 3}
    section = CFG["common_gates"]
    stage = CommonGatesStage(None, dict(section["limits"], max_blockiness_increase=None), section["per_task"], section["per_kind"])
    _, target = render_tone(photo, "warm", 0)
    out, gates = _gates(stage, _row("tone_transformation", photo, target, edit={"kind": "grade"}))
    assert "blockiness_increase" not in gates and "blockiness_increase" not in schema.loads(out["scores"])["gates_ran"]


def test_limits_come_from_config_and_take_overrides():
    cfg = config.load_config("cpu", overrides=[config.parse_set("common_gates.per_task.style_transfer.max_shift=0.02")])
    assert cfg["common_gates"]["per_task"]["style_transfer"]["max_shift"] == 0.02
    assert CommonGatesStage.from_config(cfg).per_task["style_transfer"]["max_shift"] == 0.02
    with pytest.raises(config.ConfigError):
        config.load_config("cpu", overrides=[config.parse_set("common_gates.limits.no_such_gate=1")])


def test_statistics_on_hand_made_pictures(photo):
    region = np.ones(photo.shape[:2], bool)
    assert image_stats.intensity_std(np.full((32, 32, 3), 7, np.uint8)) == 0.0
    shift, _ = image_stats.phase_shift(photo, _shift(photo, 0.05), region)
    assert shift == pytest.approx(0.05 * np.hypot(1, 0.5), rel=0.1)
    grey_noise = np.random.default_rng(1).normal(0, 10.0, (64, 64, 1))  # the same in every channel: grey noise of 10
    noisy = np.clip(100 + np.repeat(grey_noise, 3, axis=2), 0, 255).astype(np.uint8)
    assert image_stats.noise_sigma(noisy, np.ones((64, 64), bool)) == pytest.approx(10.0, rel=0.15)
    assert image_stats.structure_agreement(photo, photo, region) == pytest.approx(1.0)
    assert kept_region(photo.shape, None, 3).all()
