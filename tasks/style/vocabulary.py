"""Styles a whole picture can be redrawn in: how each is named in English and Chinese, and the
prompt a text-to-image model gets for it."""

from __future__ import annotations

# name: (English noun phrase, Chinese, prompt for the generator)
STYLES: dict[str, tuple[str, str, str]] = {
    "watercolor": ("a watercolour painting", "水彩画", "a watercolour painting, soft washes of colour bleeding on textured paper"),
    "line_art": ("black-and-white line art", "黑白线稿", "clean black ink line art on white paper, no shading"),
    "ukiyo_e": ("a ukiyo-e woodblock print", "浮世绘木刻版画", "a ukiyo-e Japanese woodblock print, flat colours, bold outlines"),
    "cyberpunk": ("a cyberpunk scene", "赛博朋克场景", "a cyberpunk scene, neon magenta and cyan lights, night, futuristic"),
    "film": ("an analogue film photo", "胶片照片", "an analogue 35mm film photograph, grain, faded colours"),
    "oil_painting": ("an oil painting", "油画", "an oil painting on canvas, thick visible brush strokes"),
    "pixel_art": ("pixel art", "像素画", "retro 16-bit pixel art, limited palette, crisp square pixels"),
    "pencil_sketch": ("a pencil sketch", "铅笔素描", "a graphite pencil sketch on paper, hatching, monochrome"),
    "colored_pencil": ("a coloured-pencil drawing", "彩色铅笔画", "a coloured pencil drawing on paper"),
    "cartoon": ("a cartoon", "卡通画", "a cartoon illustration, flat cel shading, bold black outlines"),
    "poster": ("a flat-colour poster", "平涂海报", "a screen-printed poster with a few flat colours"),
    "anime": ("an anime illustration", "动漫插画", "an anime illustration, clean lines, vibrant cel shading"),
}


def style_names(name: str) -> tuple[str, str]:
    en, zh, _ = STYLES[name]
    return en, zh


def style_prompt(name: str) -> str:
    return STYLES[name][2]
