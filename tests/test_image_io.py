"""Pictures between stages (NPY) and as written (PNG): lossless both ways, and the engine's
`png_encode` stage leaves only PNG in what is written."""

import io

import numpy as np
import pytest
from skimage import data

from pipeline.core import schema
from pipeline.core.image_io import (
    NPY_MAGIC,
    PNG_MAGIC,
    decode_image,
    decode_mask,
    encode_image,
    encode_png,
    to_png,
)
from pipeline.engine.engine_stages import EncodePng

RGB = data.astronaut()[::4, ::4]


@pytest.mark.parametrize(
    "array, mode",
    [
        (RGB, "RGB"),
        (RGB[..., 0], "L"),
        ((RGB[..., 0] > 100).astype(np.uint8) * 255, "L"),
        (np.dstack([RGB, RGB[..., 1]]), "RGBA"),
        (RGB[..., 0].astype(np.uint16) * 200, None),
    ],
)
def test_in_flight_form_is_lossless_and_reads_like_the_png(array, mode):
    inflight = encode_image(array)
    assert inflight.startswith(NPY_MAGIC)
    if mode is None:  # 16-bit: the array comes back as it went in
        restored = np.load(io.BytesIO(inflight))
        assert restored.dtype == np.uint16 and np.array_equal(restored, array)
        return
    assert np.array_equal(decode_image(inflight, mode), decode_image(encode_png(array), mode))
    assert np.array_equal(decode_image(inflight, mode), array)


def test_the_written_png_reads_back_as_written_in_pil():
    from PIL import Image

    for array in (RGB, np.dstack([RGB, RGB[..., 2]]), RGB[..., 1], RGB[..., 0].astype(np.uint16) * 200, RGB[..., 0] > 128):
        with Image.open(io.BytesIO(encode_png(array))) as img:
            assert np.array_equal(np.asarray(img), array), (array.dtype, array.shape)


def test_conversions_between_modes_match_pil():
    png, inflight = encode_png(RGB), encode_image(RGB)
    assert np.array_equal(decode_image(inflight, "L"), decode_image(png, "L"))  # RGB read as grey
    grey = RGB[..., 1]
    assert np.array_equal(decode_image(encode_image(grey), "RGB"), decode_image(encode_png(grey), "RGB"))
    flags = RGB[..., 0] > 128
    assert np.array_equal(decode_mask(encode_image(flags)), decode_mask(encode_png(flags)))
    assert np.array_equal(decode_mask(encode_image(flags)), flags)


def test_to_png_is_the_written_form_and_keeps_a_png_as_it_is():
    png = encode_png(RGB)
    assert to_png(encode_image(RGB)) == png
    assert to_png(png) is png
    with pytest.raises(Exception):
        to_png(b"not a picture")


def test_png_encode_stage_converts_candidates_only():
    def row(status):
        return {
            "status": status, "source_image": schema.image_value(encode_image(RGB)),
            "target_image": schema.image_value(encode_image(255 - RGB)), "mask": None,
        }

    ok, sibling = EncodePng().process_batch([row(schema.OK), row(schema.REJECTED)])
    skipped = row(schema.SKIPPED)
    assert sibling["source_image"]["bytes"] is ok["source_image"]["bytes"]  # a shared source is encoded once
    assert ok["source_image"]["bytes"].startswith(PNG_MAGIC) and ok["target_image"]["bytes"].startswith(PNG_MAGIC)
    assert np.array_equal(decode_image(ok["target_image"]["bytes"]), 255 - RGB)
    assert schema.SKIPPED not in EncodePng.accepts and schema.REJECTED in EncodePng.accepts
    assert skipped["source_image"]["bytes"].startswith(NPY_MAGIC)  # the writer drops these pictures
