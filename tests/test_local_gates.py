"""The local gates (filters/local_gates.py) on planted defects: a thin leak outside the mask,
blur and noise inside it are rejected; a clean recolour, a material swap and a restyle are kept."""

import cv2
import numpy as np
import pytest

from filters import image_stats
from filters.local_gates import outside_window_change
from filters.mask_change import dilate
from pipeline.core import schema
from pipeline.core.image_io import encode_png
from tasks.material.swap import texture_swap
from tasks.style.effects import RENDERERS
from tests import test_common_gates as common

stage, photo, cup_mask, recoloured = common.stage, common.photo, common.cup_mask, common.recoloured  # the same fixtures

LOCAL = {"outside_window_change", "inside_sharpness_ratio", "inside_noise_increase", "inside_colour_noise_increase", "inside_blockiness_increase"}


def _gates(stage, task, source, target, mask=None):
    row = {
        "sample_id": "s",
        "task": task,
        "status": schema.OK,
        "source_image": schema.image_value(encode_png(source)),
        "target_image": schema.image_value(encode_png(target)),
        "mask": schema.image_value(encode_png(mask.astype(np.uint8) * 255)) if mask is not None else None,
        "edit": schema.dumps({}),
        "scores": None,
    }
    out = stage.process_row(row)
    return out, schema.loads(out["scores"])["gates"]


def _failed(gates):
    return {name for name, g in gates.items() if not g["passed"]}


def _inside(damaged, target, mask):
    out = target.copy()
    out[mask] = damaged[mask]
    return out


def test_a_clean_recolour_passes_and_records_every_local_gate(stage, photo, cup_mask, recoloured):
    out, gates = _gates(stage, "color_alteration", photo, recoloured, cup_mask)
    assert out["status"] == schema.OK and not _failed(gates), gates
    assert LOCAL <= set(gates) and LOCAL <= set(schema.loads(out["scores"])["gates_ran"])


def test_a_thin_leak_outside_the_mask_is_rejected(stage, photo, cup_mask, recoloured):
    # a 3-pixel band just past the kept region's start takes the edit's colour shift
    band = dilate(cup_mask, 6) & ~dilate(cup_mask, 3)
    leaked = recoloured.copy()
    leaked[band] = np.clip(photo[band].astype(np.int16) + (40, -30, 30), 0, 255).astype(np.uint8)
    out, gates = _gates(stage, "color_alteration", photo, leaked, cup_mask)
    assert "outside_window_change" in _failed(gates) and out["status"] == schema.REJECTED


def test_the_worst_window_is_not_averaged_away(photo):
    region = np.ones(photo.shape[:2], bool)
    target = photo.copy()
    target[100:110, 100:110] = 255 - target[100:110, 100:110]
    worst = outside_window_change(photo, target, region, 10)
    whole = np.abs(photo.astype(int) - target.astype(int)).mean()
    assert worst > 50 * whole


@pytest.mark.parametrize("damage, gate", [
    (lambda t: cv2.GaussianBlur(t, (0, 0), 1.0), "inside_sharpness_ratio"),
    (lambda t: np.clip(t + np.random.default_rng(0).normal(0, 8.0, t.shape), 0, 255).astype(np.uint8), "inside_noise_increase"),
])
def test_mild_damage_inside_the_mask_only_is_rejected(stage, photo, cup_mask, recoloured, damage, gate):
    target = _inside(damage(recoloured), recoloured, cup_mask)
    out, gates = _gates(stage, "color_alteration", photo, target, cup_mask)
    assert gate in _failed(gates) and out["status"] == schema.REJECTED
    assert not _failed(gates) & {"sharpness_ratio", "noise_increase"}  # the outside is untouched


@pytest.mark.parametrize("material", ["marble", "gold", "moss"])
def test_a_material_swap_is_kept(stage, photo, cup_mask, material):
    target = texture_swap(photo, cup_mask, material, 0.5, 0.008, 3, seed=1)
    out, gates = _gates(stage, "material_modification", photo, target, cup_mask)
    assert not _failed(gates), gates


def test_a_restyle_has_no_mask_and_no_local_gates(stage, photo):
    _, gates = _gates(stage, "style_transfer", photo, RENDERERS["watercolor"](photo))
    assert not _failed(gates) and not LOCAL & set(gates)


def _colour_noise(rgb, sigma, seed=0):
    """Noise drawn per channel, as a sensor or a damaged generator leaves it."""
    return np.clip(rgb + np.random.default_rng(seed).normal(0, sigma, rgb.shape), 0, 255).astype(np.uint8)


def test_the_noise_floor_reads_added_noise_and_not_the_pictures_detail(photo):
    region = np.ones(photo.shape[:2], bool)
    clean = image_stats.noise_sigma(photo, region)
    assert clean < 3.0  # the cup, the beans and the table's grain are detail, not noise
    noisy = image_stats.noise_sigma(_colour_noise(photo, 8.0), region)
    assert np.sqrt(noisy**2 - clean**2) == pytest.approx(8.0, rel=0.1)  # independent noises add in quadrature


def test_colour_noise_ignores_a_tinted_texture_and_reads_noise_drawn_per_channel():
    texture = np.random.default_rng(2).normal(0.0, 40.0, (96, 96))  # grain as strong as heavy noise
    tinted = np.clip(128 + texture[..., None] * np.array([1.0, 0.7, 0.4]), 0, 255).astype(np.uint8)
    region = np.ones((96, 96), bool)
    assert image_stats.colour_noise_sigma(tinted, region) < 1.0
    assert image_stats.noise_sigma(tinted, region) > 10.0  # the floor alone cannot tell it from noise
    assert image_stats.colour_noise_sigma(_colour_noise(tinted, 8.0), region) > 5.0


@pytest.mark.parametrize("material", ["moss", "marble", "gold"])
def test_mild_noise_on_a_new_material_is_rejected_by_the_colour_noise_gate(stage, photo, cup_mask, material):
    target = texture_swap(photo, cup_mask, material, 0.5, 0.008, 3, seed=1)
    noisy = _inside(_colour_noise(target, 8.0), target, cup_mask)
    out, gates = _gates(stage, "material_modification", photo, noisy, cup_mask)
    assert "inside_colour_noise_increase" in _failed(gates) and out["status"] == schema.REJECTED


@pytest.mark.parametrize("task", ["color_alteration", "tone_transformation", "style_transfer"])
def test_a_sub_one_percent_shift_is_rejected(stage, photo, cup_mask, recoloured, task):
    target = {"color_alteration": recoloured, "tone_transformation": photo // 2 + 40, "style_transfer": RENDERERS["line_art"](photo)}[task]
    height, width = photo.shape[:2]
    moved = cv2.warpAffine(target, np.float32([[1, 0, 0.006 * width], [0, 1, 0]]), (width, height), borderMode=cv2.BORDER_REFLECT)
    mask = cup_mask if task == "color_alteration" else None
    _, kept = _gates(stage, task, photo, target, mask)
    out, gates = _gates(stage, task, photo, moved, mask)
    assert kept["shift"]["passed"] and not gates["shift"]["passed"] and out["status"] == schema.REJECTED
