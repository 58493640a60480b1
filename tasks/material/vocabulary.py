"""Materials an object can be remade in: English and Chinese names, and how a text-to-image model
is told about the surface."""

from __future__ import annotations

# name: (English, Chinese, surface description for the generator's prompt)
MATERIALS: dict[str, tuple[str, str, str]] = {
    "wood": ("wood", "木头", "polished oak wood with a visible grain"),
    "marble": ("marble", "大理石", "white marble with grey veins"),
    "gold": ("gold", "黄金", "shiny polished gold"),
    "silver": ("silver", "银", "polished silver metal"),
    "copper": ("copper", "铜", "burnished copper"),
    "brick": ("brick", "砖", "red bricks and mortar"),
    "stone": ("stone", "石头", "rough grey stone"),
    "moss": ("moss", "苔藓", "a thick layer of green moss"),
    "glass": ("glass", "玻璃", "clear transparent glass"),
    "porcelain": ("blue-and-white porcelain", "青花瓷", "glazed blue-and-white porcelain with painted patterns"),
    "ice": ("ice", "冰", "clear frozen ice"),
    "jade": ("jade", "玉石", "polished green jade"),
}


def material_names(name: str) -> tuple[str, str]:
    en, zh, _ = MATERIALS[name]
    return en, zh


def material_prompt(label: str, name: str) -> str:
    return f"a {label} made of {MATERIALS[name][2]}"
