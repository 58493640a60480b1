"""Decode and validate an input image into an 8-bit RGB array at the working resolution.

Every input either decodes to a usable array or raises `InputRefused` with a reason."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class InputRefused(Exception):
    """The input cannot become a source image. `kind` is 'error' (unreadable) or 'skipped'
    (readable but unusable, such as too small)."""

    def __init__(self, reason: str, kind: str = "error"):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass
class DecodeLimits:
    working_size: int = 512
    upscale: bool = False
    min_side: int = 64
    max_aspect: float = 4.0
    max_pixels: int = 89_478_485
    max_bytes: int | None = None  # an input larger than this is refused before it is read


@dataclass
class Decoded:
    rgb: np.ndarray  # H x W x 3 uint8 at the working resolution
    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    scale: tuple[float, float]  # working / original, per axis
    conversions: list[str] = field(default_factory=list)


def _open_checked(data: bytes, limits: DecodeLimits) -> Image.Image:
    if not data:
        raise InputRefused("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputRefused(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError as exc:
        raise InputRefused(f"not a readable image: {exc}") from None
    except Exception as exc:  # Pillow raises many types on damaged headers
        raise InputRefused(f"not a readable image: {type(exc).__name__}: {exc}") from None
    width, height = img.size
    # The header gives the pixel count before any pixel is decoded.
    if width * height > limits.max_pixels:
        raise InputRefused(f"decompression bomb refused: {width}x{height} exceeds {limits.max_pixels} pixels")
    return img


def _verify(data: bytes) -> None:
    # verify() checks chunk CRCs and structure; a separate full load below catches truncation.
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
    except Exception as exc:
        raise InputRefused(f"corrupt image: {type(exc).__name__}: {exc}") from None


def _rescale_to_uint8(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.any():
        raise InputRefused("image has no finite pixel values")
    lo, hi = float(array[finite].min()), float(array[finite].max())
    array = np.where(finite, array, lo)
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    return np.round((array - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _to_rgb(img: Image.Image, conversions: list[str]) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        conversions.append(f"rescaled {mode} by its value range")
        grey = _rescale_to_uint8(np.asarray(img))
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "RGBa", "La", "PA") or (mode == "P" and "transparency" in img.info):
        conversions.append(f"composited {mode} on white")
        return np.asarray(_composite_on_white(img))
    conversions.append(f"converted {mode} to RGB")
    return np.asarray(img.convert("RGB"))


def _working_size(width: int, height: int, limits: DecodeLimits) -> tuple[int, int]:
    scale = limits.working_size / max(width, height)
    if scale > 1 and not limits.upscale:
        scale = 1.0
    new_w = max(16, int(round(width * scale)) // 16 * 16)
    new_h = max(16, int(round(height * scale)) // 16 * 16)
    return new_w, new_h


def decode_image(data: bytes, limits: DecodeLimits) -> Decoded:
    img = _open_checked(data, limits)
    _verify(data)
    conversions: list[str] = []
    try:
        if getattr(img, "is_animated", False):
            conversions.append(f"first frame of {img.n_frames}")
            img.seek(0)
        img.load()
        oriented = ImageOps.exif_transpose(img)
        if oriented is not img:
            orientation = img.getexif().get(0x0112)
            if orientation and orientation != 1:
                conversions.append(f"EXIF orientation {orientation} applied")
        rgb = _to_rgb(oriented, conversions)
    except InputRefused:
        raise
    except Exception as exc:
        raise InputRefused(f"corrupt image: {type(exc).__name__}: {exc}") from None

    height, width = rgb.shape[:2]
    if min(width, height) < limits.min_side:
        raise InputRefused(f"too small: {width}x{height}, the shorter side must be at least {limits.min_side}", "skipped")
    aspect = max(width, height) / min(width, height)
    if aspect > limits.max_aspect:
        raise InputRefused(f"aspect ratio {aspect:.1f} exceeds {limits.max_aspect}", "skipped")

    new_w, new_h = _working_size(width, height, limits)
    if (new_w, new_h) != (width, height):
        resample = Image.Resampling.LANCZOS if new_w < width else Image.Resampling.BICUBIC
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((new_w, new_h), resample))
    return Decoded(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        original_size=(width, height),
        scale=(new_w / width, new_h / height),
        conversions=conversions,
    )


def scale_objects(objects: list[dict], scale: tuple[float, float], size: tuple[int, int]) -> list[dict]:
    """Boxes from original pixels to working pixels, clipped to the image; empty boxes dropped."""
    sx, sy = scale
    width, height = size
    out = []
    for obj in objects:
        x, y, w, h = obj["bbox"]
        x0, y0 = max(0.0, x * sx), max(0.0, y * sy)
        x1, y1 = min(float(width), (x + w) * sx), min(float(height), (y + h) * sy)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            out.append({**obj, "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]})
    return out
