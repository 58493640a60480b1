"""The outline-crispness gate (filters/edge_crispness.py): a new background cut cleanly against
the subject is kept, smooth or textured; the same background blurred, even lightly, is rejected."""

import cv2
import numpy as np
import pytest
import skimage.data

from filters.edge_crispness import edge_crispness, edge_crispness_ratio
from tests import test_common_gates as common
from tests.test_local_gates import _failed, _gates, _inside

stage = common.stage
SIZE = (300, 200)  # width, height


@pytest.fixture(scope="module")
def scene():
    """A subject with a real outline (a disc of the astronaut picture) on the coffee photo; the
    edit's mask is the background, as a background change records it."""
    backdrop = cv2.resize(skimage.data.coffee(), SIZE, interpolation=cv2.INTER_AREA)
    subject = cv2.resize(skimage.data.astronaut(), SIZE, interpolation=cv2.INTER_AREA)
    disc = np.zeros(backdrop.shape[:2], np.uint8)
    cv2.circle(disc, (150, 100), 60, 1, -1)
    disc = disc.astype(bool)
    source = backdrop.copy()
    source[disc] = subject[disc]
    return source, subject, ~disc


def _new_background(source, background_mask, backdrop):
    target = source.copy()
    target[background_mask] = backdrop[background_mask]
    return target


def _textured_backdrop():
    return cv2.resize(skimage.data.chelsea(), SIZE, interpolation=cv2.INTER_AREA)


def _smooth_backdrop():
    ramp = np.linspace(40, 220, SIZE[0], dtype=np.float32)
    return np.repeat(np.stack([ramp, ramp * 0.8, 255 - ramp], axis=-1)[None], SIZE[1], axis=0).astype(np.uint8)


@pytest.mark.parametrize("backdrop", [_textured_backdrop, _smooth_backdrop], ids=["textured", "smooth"])
def test_a_new_background_cut_cleanly_is_kept(stage, scene, backdrop):
    source, _, background = scene
    target = _new_background(source, background, backdrop())
    assert edge_crispness_ratio(source, target, background) > 0.95
    out, gates = _gates(stage, "background_change", source, target, background)
    assert "inside_edge_crispness" in gates and "inside_edge_crispness" not in _failed(gates), gates


@pytest.mark.parametrize("sigma", [1.0, 2.0])
@pytest.mark.parametrize("backdrop", [_textured_backdrop, _smooth_backdrop], ids=["textured", "smooth"])
def test_a_blurred_new_background_is_rejected(stage, scene, backdrop, sigma):
    source, _, background = scene
    clean = _new_background(source, background, backdrop())
    blurred = _inside(cv2.GaussianBlur(clean, (0, 0), sigma), clean, background)
    assert edge_crispness_ratio(source, blurred, background) < 0.9
    _, gates = _gates(stage, "background_change", source, blurred, background)
    assert "inside_edge_crispness" in _failed(gates)


def test_light_blur_lowers_the_crispness_step_by_step(scene):
    source, _, background = scene
    clean = _new_background(source, background, _textured_backdrop())
    values = [edge_crispness(_inside(cv2.GaussianBlur(clean, (0, 0), s), clean, background), background) for s in (0.5, 1.0, 2.0)]
    assert edge_crispness(clean, background) > values[0] and values == sorted(values, reverse=True)


def test_an_outline_with_no_colour_step_is_not_measured():
    flat = np.full((120, 120, 3), 90, np.uint8)
    mask = np.zeros((120, 120), bool)
    mask[30:90, 30:90] = True
    assert edge_crispness(flat, mask) is None
    assert edge_crispness_ratio(flat, flat, mask) is None


def test_the_gate_is_off_where_its_limit_is_null(stage, scene):
    source, _, background = scene
    clean = _new_background(source, background, _textured_backdrop())
    blurred = _inside(cv2.GaussianBlur(clean, (0, 0), 2.0), clean, background)
    _, gates = _gates(stage, "subject_replace", source, blurred, background)  # null outside background_change
    assert "inside_edge_crispness" not in gates
