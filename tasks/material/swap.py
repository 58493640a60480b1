"""The cpu profile's material edit: inside the mask, a material's albedo times the object's own
smoothed shading, so the shape still reads while the surface becomes wood, marble, metal...
Outside the mask nothing changes."""

from __future__ import annotations

import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.lab_recolor import inner_alpha
from stages.material_shading import relative_shading
from stages.material_textures import METALS, TEXTURES, albedo


def _smoothstep(low: float, high: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - low) / max(high - low, 1e-6), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def metal_surface(colour: np.ndarray, shading: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Metal: a steep response to light, and white-ish highlights where the object is brightest."""
    s = np.clip(shading, 0.0, 2.5)
    body = colour * (0.15 + 0.7 * s**1.5)[..., None]
    inside = s[region]
    low, high = np.quantile(inside, [0.85, 0.99]) if inside.size else (1.0, 1.1)
    highlight = _smoothstep(float(low), float(high), s)[..., None]
    return body + (1.0 - body) * 0.7 * highlight


def texture_swap(
    rgb: np.ndarray, mask: np.ndarray, material: str, texture_scale: float, shading_sigma: float, feather_px: int, seed: int
) -> np.ndarray:
    region = mask.astype(bool)
    if not region.any():
        raise ValueError("empty mask")
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    height, width = y1 - y0, x1 - x0
    surface = albedo(material, height, width, texture_scale * max(height, width), seed)
    shading = relative_shading(rgb, region, shading_sigma)[y0:y1, x0:x1]
    local = region[y0:y1, x0:x1]
    if material in METALS:
        painted = metal_surface(surface, shading, local)
    else:
        painted = surface * np.clip(shading, 0.25, 1.8)[..., None]
    out = rgb.astype(np.float32).copy()
    alpha = inner_alpha(region, feather_px)[y0:y1, x0:x1, None]
    crop = out[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = crop * (1.0 - alpha) + np.clip(painted, 0.0, 1.0) * 255.0 * alpha
    out = np.round(out).astype(np.uint8)
    out[~region] = rgb[~region]  # exactly untouched outside
    return out


class MaterialSwapStage(Stage):
    name = "material_swap"
    reads = ("edit", "source_image", "mask")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], texture_scale: float, shading_sigma: float, feather_px: int):
        self.tasks = tasks
        self.texture_scale = texture_scale
        self.shading_sigma = shading_sigma
        self.feather_px = feather_px

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        rgb = decode_image(row["source_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        target = texture_swap(rgb, mask, edit["material"], self.texture_scale, self.shading_sigma, self.feather_px, edit["texture_seed"])
        row["target_image"] = schema.image_value(encode_image(target))
        record_stage(
            row, self.name, backend="numpy.texture_times_shading", material=edit["material"], texture_seed=edit["texture_seed"],
            texture_scale=self.texture_scale, shading_sigma=self.shading_sigma, feather_px=self.feather_px,
        )
        return row


CLASSICAL_MATERIALS = frozenset(TEXTURES)
