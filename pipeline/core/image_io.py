"""Lossless encoding of the uint8 arrays that travel between stages."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def decode_png(data: bytes, mode: str = "RGB") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert(mode))


def decode_mask(data: bytes) -> np.ndarray:
    """A stored mask as a boolean array."""
    return decode_png(data, "L") > 127
