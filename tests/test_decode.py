import numpy as np
import pytest

from stages.decode import DecodeLimits, InputRefused, decode_image
from tests import corpus

LIMITS = DecodeLimits(working_size=128, min_side=64, max_aspect=4.0)


@pytest.mark.parametrize("name", sorted(corpus.cases()))
def test_bad_file_corpus_outcome(name):
    data, _ext, expected = corpus.cases()[name]
    if expected in (corpus.REFUSED, corpus.SKIPPED):
        with pytest.raises(InputRefused) as info:
            decode_image(data, LIMITS)
        assert info.value.kind == ("error" if expected == corpus.REFUSED else "skipped")
        return
    decoded = decode_image(data, LIMITS)
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.ndim == 3 and decoded.rgb.shape[2] == 3
    assert decoded.rgb.shape[0] % 16 == 0 and decoded.rgb.shape[1] % 16 == 0
    assert max(decoded.rgb.shape[:2]) <= LIMITS.working_size
    assert bool(decoded.conversions) == (expected == corpus.CONVERTED), decoded.conversions


def test_sixteen_bit_grey_is_rescaled_not_white():
    decoded = decode_image(corpus.cases()["grey16.png"][0], LIMITS)
    grey = decoded.rgb[..., 0].astype(int)
    assert grey.min() <= 5 and grey.max() >= 250  # the full range survives
    assert 80 < grey.mean() < 175


def test_float_tiff_is_rescaled_not_black():
    decoded = decode_image(corpus.cases()["float.tif"][0], LIMITS)
    assert decoded.rgb.max() >= 250


def test_exif_orientation_turns_the_image_upright():
    decoded = decode_image(corpus.exif_rotated_jpeg(), DecodeLimits(working_size=512, min_side=64))
    height, width = decoded.rgb.shape[:2]
    assert height > width  # stored 160x96 landscape, displayed portrait
    assert decoded.original_size == (96, 160)


def test_transparency_is_composited_on_white():
    decoded = decode_image(corpus.palette_transparent_png(), LIMITS)
    assert decoded.conversions and "white" in decoded.conversions[0]


def test_animated_gif_keeps_first_frame():
    decoded = decode_image(corpus.animated_gif(), LIMITS)
    assert abs(int(decoded.rgb.mean()) - 40) <= 2


def test_bomb_refused_from_header_before_decoding():
    with pytest.raises(InputRefused, match="^decompression bomb refused"):
        decode_image(corpus.bomb_png(), LIMITS)
    # under Pillow's own limit, the configured one still refuses from the header
    with pytest.raises(InputRefused, match="^decompression bomb refused: 9000x9000 exceeds 1000000 pixels"):
        decode_image(corpus.bomb_png(9000, 9000), DecodeLimits(max_pixels=1_000_000))


def test_working_size_is_multiple_of_16_and_keeps_aspect():
    rgb = np.zeros((300, 451, 3), np.uint8)
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    decoded = decode_image(buf.getvalue(), DecodeLimits(working_size=256))
    height, width = decoded.rgb.shape[:2]
    assert (width, height) == (256, 160)
    assert decoded.scale == pytest.approx((256 / 451, 160 / 300))
