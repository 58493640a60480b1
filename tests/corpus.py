"""A corpus of awkward and broken image files, each with the outcome the decoder must give."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ACCEPTED, CONVERTED, REFUSED, SKIPPED = "accepted", "converted", "refused", "skipped"


def _photo(width: int = 160, height: int = 120) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=2).astype(np.uint8)


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 50000, height: int = 50000) -> bytes:
    """A valid PNG header claiming a huge image, with almost no data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def corrupted_png() -> bytes:
    data = bytearray(_save(Image.fromarray(_photo()), "PNG"))
    start = data.index(b"IDAT") + 4
    for i in range(start + 10, start + 40):
        data[i] ^= 0x5A  # damage the compressed pixels; the CRC no longer matches
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    img = Image.fromarray(_photo(160, 96))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    return _save(img, "JPEG", exif=exif.tobytes(), quality=90)


def animated_gif() -> bytes:
    frames = [Image.fromarray(np.full((96, 128, 3), v, np.uint8)) for v in (40, 200, 120)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_transparent_png() -> bytes:
    img = Image.fromarray(_photo()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _save(img, "PNG", transparency=0)


def cases() -> dict[str, tuple[bytes, str, str]]:
    """name -> (file bytes, file extension, expected outcome)"""
    photo = Image.fromarray(_photo())
    jpeg = _save(photo, "JPEG", quality=90)
    grey16 = Image.fromarray((np.arange(120 * 160, dtype=np.uint32).reshape(120, 160) * 3).astype(np.uint16))
    return {
        "plain.jpg": (jpeg, ".jpg", ACCEPTED),
        "upper.PNG": (_save(photo, "PNG"), ".PNG", ACCEPTED),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], ".jpg", REFUSED),
        "zero_bytes.png": (b"", ".png", REFUSED),
        "text.png": (b"this is not an image, only text\n" * 10, ".png", REFUSED),
        "bomb.png": (bomb_png(), ".png", REFUSED),
        "cmyk.jpg": (_save(photo.convert("CMYK"), "JPEG"), ".jpg", CONVERTED),
        "grey16.png": (_save(grey16, "PNG"), ".png", CONVERTED),
        "palette_alpha.png": (palette_transparent_png(), ".png", CONVERTED),
        "rgba.png": (_save(photo.convert("RGBA"), "PNG"), ".png", CONVERTED),
        "la.png": (_save(photo.convert("LA"), "PNG"), ".png", CONVERTED),
        "bilevel.png": (_save(photo.convert("1"), "PNG"), ".png", CONVERTED),
        "float.tif": (_save(Image.fromarray(_photo()[..., 0].astype(np.float32) / 1000.0), "TIFF"), ".tif", CONVERTED),
        "tiny_1x1.png": (_save(Image.new("RGB", (1, 1)), "PNG"), ".png", SKIPPED),
        "animated.gif": (animated_gif(), ".gif", CONVERTED),
        "exif_rotated.jpg": (exif_rotated_jpeg(), ".jpg", CONVERTED),
        "corrupt_chunk.png": (corrupted_png(), ".png", REFUSED),
        "banner.png": (_save(Image.new("RGB", (1000, 100)), "PNG"), ".png", SKIPPED),
    }


def write_corpus(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (data, _ext, outcome) in cases().items():
        (folder / name).write_bytes(data)
        expected[name] = outcome
    return expected
