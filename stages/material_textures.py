"""Surface albedo for the cpu material swap: procedural wood grain and marble veins, tinted
photographic textures (brick, gravel as stone, grass as moss), and flat metal tints whose look
comes from the shading instead. Every function returns float RGB in 0-1 at the size asked for,
and is deterministic for a given seed."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


def smooth_noise(height: int, width: int, cells: float, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Value noise in about -1..1: random grids upsampled smoothly, finer octaves weaker."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        n = max(2, int(round(cells * 2**octave)))
        grid = rng.uniform(-1.0, 1.0, (n, max(2, int(round(n * width / max(height, 1)))))).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
    return total / weight


def _mix(low: tuple[float, float, float], high: tuple[float, float, float], t: np.ndarray) -> np.ndarray:
    low_, high_ = np.array(low, np.float32), np.array(high, np.float32)
    return low_ + (high_ - low_) * np.clip(t, 0.0, 1.0)[..., None]


def wood(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Growth rings seen from the side: stretched along the long axis, bent by noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    along_x = width >= height
    across = (yy if along_x else xx) / scale
    along = (xx if along_x else yy) / scale
    warp = smooth_noise(height, width, 2, rng) + 0.3 * np.sin(along * 1.7)
    rings = across * 6.0 + warp * 0.9
    grain = np.abs(np.sin(np.pi * rings)) ** 0.6
    fibres = smooth_noise(height, width, 40, rng, octaves=2)
    t = 0.65 * grain + 0.25 * (fibres * 0.5 + 0.5) + 0.1 * (smooth_noise(height, width, 2, rng) * 0.5 + 0.5)
    return _mix((0.36, 0.2, 0.09), (0.74, 0.52, 0.3), t)


def marble(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """White stone with dark veins where a turbulent sine wave crosses zero."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / scale
    turbulence = np.abs(smooth_noise(height, width, 4, rng, octaves=5))
    wave = np.sin(np.pi * (u * 3.0 + turbulence * 5.0))
    veins = (1.0 - np.abs(wave)) ** 10
    cloud = smooth_noise(height, width, 6, rng) * 0.5 + 0.5
    base = _mix((0.8, 0.8, 0.78), (0.95, 0.94, 0.92), cloud)
    return base * (1.0 - 0.6 * veins[..., None]) + np.array([0.02, 0.03, 0.03], np.float32) * veins[..., None]


@lru_cache(maxsize=None)
def _photo_texture(name: str) -> np.ndarray:
    import skimage.data

    grey = getattr(skimage.data, name)().astype(np.float32) / 255.0
    return grey / grey.mean()  # 1 on average: the tint sets the material's brightness


def tiled(texture: np.ndarray, height: int, width: int, scale: float) -> np.ndarray:
    """The texture resized so one tile spans `scale` pixels, mirrored at the seams and repeated."""
    side = max(8, int(round(scale)))
    tile = cv2.resize(texture, (side, side), interpolation=cv2.INTER_AREA if side < texture.shape[0] else cv2.INTER_CUBIC)
    mirrored = np.block([[tile, tile[:, ::-1]], [tile[::-1], tile[::-1, ::-1]]])
    reps = (int(np.ceil(height / mirrored.shape[0])), int(np.ceil(width / mirrored.shape[1])))
    return np.tile(mirrored, reps)[:height, :width]


def _photo(name: str, tint: tuple[float, float, float], contrast: float, span: float = 1.0, turn: bool = False):
    """A tinted photo texture; `span` widens its tile relative to the others, `turn` rotates it
    a quarter (skimage's bricks stand on end)."""

    def render(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
        texture = _photo_texture(name)
        detail = tiled(np.rot90(texture) if turn else texture, height, width, scale * span)
        shifted = np.roll(detail, (int(rng.integers(0, 64)), int(rng.integers(0, 64))), axis=(0, 1))
        return np.clip(np.array(tint, np.float32) * (1.0 + contrast * (shifted - 1.0))[..., None], 0.0, 1.0)

    return render


def _flat(colour: tuple[float, float, float]):
    def render(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
        return np.broadcast_to(np.array(colour, np.float32), (height, width, 3)).copy()

    return render


TEXTURES = {
    "wood": wood,
    "marble": marble,
    "brick": _photo("brick", (0.62, 0.3, 0.22), 1.6, span=2.0, turn=True),
    "stone": _photo("gravel", (0.55, 0.53, 0.5), 1.0),
    "moss": _photo("grass", (0.3, 0.46, 0.16), 1.0),
    "gold": _flat((1.0, 0.76, 0.3)),
    "silver": _flat((0.8, 0.81, 0.84)),
    "copper": _flat((0.85, 0.47, 0.3)),
}
# metals: no texture of their own; contrasty shading and highlights make them read as metal
METALS = frozenset({"gold", "silver", "copper"})


def albedo(material: str, height: int, width: int, scale: float, seed: int) -> np.ndarray:
    if material not in TEXTURES:
        raise ValueError(f"no classical texture for {material!r}; have: {', '.join(TEXTURES)}")
    return TEXTURES[material](height, width, float(scale), np.random.default_rng(seed))
