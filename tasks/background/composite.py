"""Put the subject in front of a new backdrop, classically: the subject's colours nudged toward the
backdrop's (a light Lab mean/std transfer, so it seems lit by the new scene without losing its
own colours), then laid over it with a soft edge that stays inside the subject."""

from __future__ import annotations

import hashlib

import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.lab_recolor import inner_alpha, lab_to_rgb, rgb_to_lab
from tasks.background.bank import render
from tasks.background.scenes import BACKDROPS

STD_RATIO_LIMITS = (0.8, 1.25)  # a flat or busy backdrop must not flatten or harden the subject
LIGHTNESS_SHARE = 0.5  # lightness moves half as far as colour: a dark backdrop must not black the subject out


def colour_match(rgb: np.ndarray, region: np.ndarray, reference: np.ndarray, strength: float) -> np.ndarray:
    """`rgb` moved toward having, inside `region`, the Lab mean and spread of `reference`:
    `strength` of the way for colour, half that for lightness. 0 leaves it as it is."""
    lab = rgb_to_lab(rgb)
    ref = rgb_to_lab(reference).reshape(-1, 3)
    inside = lab[region]
    mean, std = inside.mean(axis=0), inside.std(axis=0) + 1e-3
    ratio = np.clip((ref.std(axis=0) + 1e-3) / std, *STD_RATIO_LIMITS)
    moved = (lab - mean) * ratio + ref.mean(axis=0)
    weight = np.array([strength * LIGHTNESS_SHARE, strength, strength], np.float32)
    return lab_to_rgb(lab + weight * (moved - lab))


def composite(source: np.ndarray, subject: np.ndarray, backdrop: np.ndarray, feather_px: int, strength: float) -> np.ndarray:
    """The subject, colour-matched, over the backdrop; outside the subject only backdrop."""
    alpha = inner_alpha(subject, feather_px)[..., None]
    matched = colour_match(source, subject, backdrop, strength) if strength > 0 else source
    out = matched.astype(np.float32) * alpha + backdrop.astype(np.float32) * (1.0 - alpha)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def backdrop_seed(sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:4], "big")


class BackgroundCompositeStage(Stage):
    """Draws the target of a background candidate: its mask marks the background, so the subject
    is everything outside it."""

    name = "background_composite"
    reads = ("edit", "source_image", "mask", "sample_id")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], feather_px: int, colour_match: float):
        self.tasks = tasks
        self.feather_px = feather_px
        self.colour_match = colour_match

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        source = decode_image(row["source_image"]["bytes"])
        subject = ~decode_mask(row["mask"]["bytes"])
        backdrop = render(BACKDROPS[edit["backdrop"]], source.shape[0], source.shape[1], backdrop_seed(row["sample_id"]))
        target = composite(source, subject, backdrop, self.feather_px, self.colour_match)
        row["target_image"] = schema.image_value(encode_image(target))
        record_stage(
            row, self.name, backend="numpy composite", backdrop=edit["backdrop"], feather_px=self.feather_px,
            colour_match=self.colour_match, mask_dilate_px=0,
        )
        return row
