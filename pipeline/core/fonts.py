"""Noto Sans CJK, Simplified Chinese face, from pip packages (never a system folder), for the text
task's rendering and the post-run sheets.

Sources, both SIL Open Font License 1.1, both Noto Sans CJK 2.004 as Google/Adobe publish it:
- regular: `noto-cjk-sans-otc` ships NotoSansCJK-Regular.ttc, byte-identical to the file of
  Debian's fonts-noto-cjk (sha256 b76b0433...690a), so regular text renders as it did from
  /usr/share/fonts/opentype/noto;
- bold: `manimgx-fonts-cjk` ships the variable NotoSansCJK-VF.otf.ttc; at wght 700 it has the
  static Bold's metrics and draws within antialiasing of it (mean 0.2-0.9 of 255 per pixel at
  24-96 px). PyPI has no static Bold of this release that is SC and OFL-labelled
  (cvttf-notosanscjk-bold is the TC region font, with no licence file), and Pillow's stroke_width
  would thicken outlines rather than draw the bold design.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import ImageFont

SIMPLIFIED_CHINESE_FACE = 2  # both collections hold JP, KR, SC, TC, HK faces; SC is third


# weight -> (import name, distribution to install, file inside the package, wght axis or None)
CJK_FONTS = {
    "regular": ("noto_cjk_sans_otc", "noto-cjk-sans-otc", "NotoSansCJK-Regular.ttc", None),
    "bold": ("manimgx_fonts_cjk", "manimgx-fonts-cjk", "NotoSansCJK-VF.otf.ttc", 700),
}


def cjk_font_path(weight: str = "regular") -> Path:
    """The font file of `weight`, found through its package; a clear error if it is missing."""
    module, dist, name, _wght = CJK_FONTS[weight]
    try:
        path = Path(str(resources.files(module).joinpath(name)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"the {weight} Chinese font ({name}) comes from the pip package {dist}, which is not installed; "
            f"run `pip install {dist}` (it is in pyproject.toml's dependencies)"
        )
    return path


@lru_cache(maxsize=128)
def cjk_font(weight: str, px: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK SC of `weight` at `px` pixels. Cached, and set up once: a variable face's
    instance is chosen here and never changed afterwards."""
    _module, _dist, _name, wght = CJK_FONTS[weight]
    font = ImageFont.truetype(str(cjk_font_path(weight)), px, index=SIMPLIFIED_CHINESE_FACE)
    if wght is not None:
        # by axis, not by name: Pillow's set_variation_by_name("Bold") leaves the Thin default's
        # advances in place (narrower lines than the static Bold); the axis matches them exactly
        font.set_variation_by_axes([wght])
    return font
