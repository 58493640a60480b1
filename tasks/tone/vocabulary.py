"""Whole-picture tone edits: what each is called in English and Chinese, which instruction slot
it fills, which backend makes it, and which global statistic it must move and which way (the
gate checks that, from source to target)."""

from __future__ import annotations

from dataclasses import dataclass, field

GRADE, ADJUST, RESTORE, SCENE = "grade", "adjust", "restore", "scene"
# each kind fills its own instruction slot, so only templates that fit its grammar are used
SLOT_OF_KIND = {GRADE: "look", ADJUST: "change", RESTORE: "restore", SCENE: "when"}


@dataclass(frozen=True)
class ToneEdit:
    kind: str
    en: str
    zh: str
    expect: tuple[tuple[str, str], ...]  # (statistic, "up" | "down" | "grey")
    prompt: str | None = None  # scenes only: what the canny ControlNet is asked for
    backend: str = field(default="classical")


TONE_EDITS: dict[str, ToneEdit] = {
    "warm": ToneEdit(GRADE, "a warm tone", "暖色调", (("warmth", "up"),)),
    "cool": ToneEdit(GRADE, "a cool tone", "冷色调", (("warmth", "down"),)),
    "black_and_white": ToneEdit(GRADE, "a black-and-white look", "黑白效果", (("chroma", "grey"),)),
    "film": ToneEdit(GRADE, "a faded film look", "胶片质感", (("black_point", "up"), ("chroma", "down"))),
    "vintage": ToneEdit(GRADE, "a vintage look", "复古色调", (("black_point", "up"), ("lightness_contrast", "down"))),
    "hdr": ToneEdit(GRADE, "an HDR look", "HDR效果", (("local_contrast", "up"),)),
    "brighter": ToneEdit(ADJUST, "brighter", "更亮", (("mean_lightness", "up"),)),
    "darker": ToneEdit(ADJUST, "darker", "更暗", (("mean_lightness", "down"),)),
    "more_contrast": ToneEdit(ADJUST, "higher in contrast", "对比度更高", (("lightness_contrast", "up"),)),
    "less_contrast": ToneEdit(ADJUST, "lower in contrast", "对比度更低", (("lightness_contrast", "down"),)),
    # restorations: the source is the clean photo with the defect synthesised, the target the clean photo
    "dehaze": ToneEdit(RESTORE, "remove the haze", "去除雾霾", (("dark_channel", "down"), ("lightness_contrast", "up"))),
    "derain": ToneEdit(RESTORE, "remove the rain streaks", "去掉雨丝", (("streak_energy", "down"),)),
    "low_light": ToneEdit(RESTORE, "fix the low-light exposure", "修复暗光下的曝光不足", (("mean_lightness", "up"),)),
    "denoise": ToneEdit(RESTORE, "remove the noise", "去除噪点", (("noise_sigma", "down"),)),
    # seasons and times of day need a generator: SD3.5 with the canny ControlNet keeps the layout
    "winter": ToneEdit(SCENE, "a snowy winter day", "下雪的冬天", (), "the same scene on a snowy winter day, snow covering the ground, photograph", "controlnet_canny"),
    "autumn": ToneEdit(SCENE, "autumn", "秋天", (), "the same scene in autumn, orange and red leaves, photograph", "controlnet_canny"),
    "spring": ToneEdit(SCENE, "spring", "春天", (), "the same scene in spring, fresh green leaves and blossoms, photograph", "controlnet_canny"),
    "night": ToneEdit(SCENE, "night", "夜晚", (("mean_lightness", "down"),), "the same scene at night, dark sky, artificial lights, photograph", "controlnet_canny"),
    "sunset": ToneEdit(SCENE, "sunset", "日落时分", (("warmth", "up"),), "the same scene at sunset, warm golden light, long shadows, photograph", "controlnet_canny"),
}


def edits_of_kind(*kinds: str) -> list[str]:
    return [name for name, edit in TONE_EDITS.items() if edit.kind in kinds]
