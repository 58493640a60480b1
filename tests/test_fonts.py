"""The Chinese font comes from pip packages, not from the system: found inside the packages'
folders, the Simplified Chinese face of each weight, drawing real glyphs, and a missing package
named in the error."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from pipeline.core import fonts
from stages.text_layout import draw_text_alpha

# sha256 of Debian fonts-noto-cjk's NotoSansCJK-Regular.ttc, which the text task used before:
# the same file means regular text renders to the same pixels
DEBIAN_REGULAR_SHA256 = "b76b0433203017ca80401b2ee0dd69350349871c4b19d504c34dbdd80541690a"


@pytest.mark.parametrize("weight", ["regular", "bold"])
def test_font_lies_inside_its_pip_package_and_opens_at_the_sc_face(weight):
    module, _dist, name, _wght = fonts.CJK_FONTS[weight]
    path = fonts.cjk_font_path(weight)
    package_dir = Path(str(resources.files(module)))
    assert path == package_dir / name and path.is_file()
    assert not str(path.resolve()).startswith("/usr/share")
    face = ImageFont.truetype(str(path), 40, index=fonts.SIMPLIFIED_CHINESE_FACE)
    assert face.getname()[0] == "Noto Sans CJK SC"


@pytest.mark.parametrize("weight", ["regular", "bold"])
def test_chinese_draws_real_glyphs(weight):
    font = fonts.cjk_font(weight, 48)
    x0, y0, x1, y1 = font.getbbox("中文招牌")
    assert x1 - x0 > 100 and y1 - y0 > 30

    def ink(ch: str) -> np.ndarray:
        canvas = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(canvas).text((8, 0), ch, font=font, fill=255)
        return np.asarray(canvas) > 127

    # a missing glyph draws the same empty box for every character
    assert ink("中").sum() > 50 and (ink("中") != ink("文")).sum() > 50


def test_bold_is_heavier_than_regular():
    regular = draw_text_alpha("营业时间", "regular", 40, (200, 60), (100, 30)).sum()
    bold = draw_text_alpha("营业时间", "bold", 40, (200, 60), (100, 30)).sum()
    assert bold > 1.2 * regular


def test_regular_is_the_file_debian_shipped():
    digest = hashlib.sha256(fonts.cjk_font_path("regular").read_bytes()).hexdigest()
    assert digest == DEBIAN_REGULAR_SHA256


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(fonts.CJK_FONTS, "regular", ("no_such_font_pkg", "no-such-font-pkg", "X.ttc", None))
    with pytest.raises(FileNotFoundError, match="pip install no-such-font-pkg"):
        fonts.cjk_font_path("regular")
