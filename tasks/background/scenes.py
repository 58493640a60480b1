"""What a new background can be, in both languages: scenes a generator draws from a prompt (model
path), and backdrops the cpu path can actually render (procedural skies and studio walls, tinted
scikit-image textures, other bundled photos)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scene:
    en: str  # as the instruction says it, with its article
    zh: str
    prompt: str  # for the generator
    tags: tuple[str, ...] = ()  # tagger labels that mean the picture is already there


SCENES: dict[str, Scene] = {
    "beach": Scene("a beach", "海滩", "a sunny sandy beach with turquoise sea and a clear blue sky, photorealistic", ("beach", "sea")),
    "snowy_mountains": Scene("snowy mountains", "雪山", "snow-covered mountains under a clear winter sky, photorealistic", ("snow", "mountain")),
    "city_night": Scene(
        "a city street at night", "夜晚的城市街道",
        "a city street at night with glowing shop signs and street lights, photorealistic", ("street", "road", "skyscraper"),
    ),
    "forest": Scene("a forest", "森林", "a green forest with tall trees and soft sunlight, photorealistic", ("forest",)),
    "studio": Scene("a plain studio backdrop", "纯色的影棚背景", "a plain light grey photo studio backdrop with soft even lighting"),
    "desert": Scene("a desert", "沙漠", "sand dunes in a desert under a bright sky, photorealistic", ("desert",)),
    "flower_field": Scene("a field of flowers", "花海", "a meadow full of colourful wildflowers, photorealistic", ("flower", "field")),
    "lake": Scene("a mountain lake", "高山湖泊", "a calm mountain lake surrounded by pine trees, photorealistic", ("lake",)),
    "library": Scene("a library", "图书馆", "a cosy library with tall wooden bookshelves, photorealistic", ("book",)),
}


@dataclass(frozen=True)
class Backdrop:
    en: str
    zh: str
    kind: str  # procedural, texture or photo
    source: str  # the generator's name, or a file in scikit-image's data folder
    license: str
    # textures are grey: their darkest and lightest tones become these colours
    tint: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None


BACKDROPS: dict[str, Backdrop] = {
    "blue_sky": Backdrop("a clear blue sky", "晴朗的蓝天", "procedural", "sky", "generated"),
    "sunset_sky": Backdrop("a sunset sky", "夕阳下的天空", "procedural", "sunset", "generated"),
    "night_sky": Backdrop("a starry night sky", "繁星点点的夜空", "procedural", "stars", "generated"),
    "studio_light": Backdrop("a plain white studio backdrop", "纯白的影棚背景", "procedural", "studio_light", "generated"),
    "studio_dark": Backdrop("a dark studio backdrop", "深色的影棚背景", "procedural", "studio_dark", "generated"),
    "brick_wall": Backdrop("a brick wall", "砖墙", "texture", "brick.png", "CC0-1.0", ((60, 28, 22), (205, 125, 95))),
    "lawn": Backdrop("a lawn", "草地", "texture", "grass.png", "CC0-1.0", ((18, 45, 10), (150, 200, 85))),
    "gravel": Backdrop("a gravel path", "碎石路", "texture", "gravel.png", "CC0-1.0", ((55, 50, 45), (210, 200, 185))),
    "deep_space": Backdrop("deep space full of galaxies", "布满星系的太空", "photo", "hubble_deep_field.jpg", "public-domain"),
    "launch_site": Backdrop("a rocket launch site at dusk", "黄昏时的火箭发射场", "photo", "rocket.jpg", "public-domain"),
}
