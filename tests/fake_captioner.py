"""Plausible captioner answers built from a prompt's own metadata, for the tests and for trying
a run against a served captioner without a model:

    python -m tests.fake_captioner --port 8311     # then: run ... --captioner-url http://127.0.0.1:8311/v1 --captioner-model fake

Most rows get a good answer. To show the fallbacks, a quarter of the edits (by a hash of their
metadata) always answer the Chinese fields in English, so they keep their templates; another
quarter first answer cut-off JSON and are good on the stricter retry."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import defaultdict

from filters.caption.prompt import read_metadata

STRICT_MARK = "Your previous answer could not be used"

# per task: (imperative, descriptive) in English and Chinese, over the task's template slots
PHRASES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "subject_remove": (
        ("Remove the {object}.", "Take the {object} out of the scene and fill its place with the background that was behind it."),
        ("去掉{object}。", "把画面中的{object}去除，并用它身后的背景自然地补全。"),
    ),
    "subject_add": (
        ("Add {a_object} {where}.", "Place {a_object} {where}, with light and shadows that match the rest of the scene."),
        ("在{where}添加{object}。", "在{where}放上一个{object}，光线和阴影与周围一致。"),
    ),
    "subject_replace": (
        ("Replace the {old} with {new}.", "Swap the {old} for {new}, keeping the same position, size and lighting."),
        ("把{old}换成{new}。", "将画面中的{old}替换为{new}，位置、大小和光线保持不变。"),
    ),
    "background_change": (
        ("Change the background to {scene}.", "Keep the {subject} exactly as it is and set it in front of {scene} instead of the old background."),
        ("把背景换成{scene}。", "保持{subject}不变，把原来的背景换成{scene}。"),
    ),
    "color_alteration": (
        ("Make the {object} {color}.", "Recolour the {object} so that it looks {color}, keeping its shading and texture unchanged."),
        ("把{object}变成{color}。", "将{object}的颜色改为{color}，保留原有的明暗和纹理。"),
    ),
    "material_modification": (
        ("Make the {object} out of {material}.", "Turn the {object} into one made of {material}, with the same shape, size and lighting."),
        ("把{object}变成{material}的。", "让{object}看起来由{material}制成，形状和光照保持不变。"),
    ),
    "motion_change": (
        ("Move the {object} {direction}.", "Show the {object} a moment later, after it has moved {direction}, with the background unchanged."),
        ("把{object}{direction}移动。", "展示片刻之后的画面：{object}{direction}移动了，背景保持不变。"),
    ),
    "portrait_beautification": (
        ("Retouch the face: {retouch}.", "Retouch the {subject}'s face: {retouch}, keeping the skin texture and the look natural."),
        ("修饰面部：{retouch}。", "修饰{subject}的面部：{retouch}，保留皮肤质感，效果自然。"),
    ),
    "tone_transformation": (
        ("Give the photo {look}.", "Change the whole picture so that it has {look}, without moving or changing any object."),
        ("给照片加上{look}。", "让整张照片呈现{look}，画面中的物体保持不变。"),
    ),
    "text_modification": (
        ('Change "{old}" to "{new}".', 'Replace the words "{old}" on the {where} with "{new}", in the same font, size and colour.'),
        ("把“{old}”改成“{new}”。", "将{where}上的文字“{old}”替换为“{new}”，字体、大小和颜色保持不变。"),
    ),
    "style_transfer": (
        ("Turn this photo into {style}.", "Redraw the whole picture as {style}, keeping its composition and every object in place."),
        ("把这张照片变成{style}。", "把整张照片重新画成{style}，构图和物体位置保持不变。"),
    ),
}


def _slots(meta: dict, lang: str) -> dict[str, str]:
    slots = defaultdict(str, {slot: value[lang] for slot, value in meta["terms"].items()})
    if meta["task"] == "tone_transformation" and "look" not in meta["terms"] and meta["terms"]:
        slots["look"] = next(iter(meta["terms"].values()))[lang]  # tone names its one slot by kind
    slots.setdefault("subject", "person" if lang == "en" else "人物")
    return slots


def answer(meta: dict) -> dict[str, str]:
    """A good answer for this metadata."""
    (imp_en, desc_en), (imp_zh, desc_zh) = PHRASES[meta["task"]]
    en, zh = _slots(meta, "en"), _slots(meta, "zh")
    fill = lambda text, slots: " ".join(text.format_map(slots).split())  # noqa: E731
    thing = en.get("object") or en.get("old") or en.get("subject") or "scene"
    return {
        "imperative_en": fill(imp_en, en),
        "imperative_zh": fill(imp_zh, zh),
        "descriptive_en": fill(desc_en, en),
        "descriptive_zh": fill(desc_zh, zh),
        "source_caption": f"A photograph with the {thing} before the edit.",
        "target_caption": f"The same photograph of the {thing} after the edit.",
    }


def compose(prompt: str) -> str:
    """The reply to one captioner prompt (see the module's docstring for the planted faults)."""
    meta = read_metadata(prompt)
    good = answer(meta)
    bucket = int(hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest(), 16) % 4
    if bucket == 0:  # the wrong language, every time: the row keeps its template
        return json.dumps({**good, "imperative_zh": good["imperative_en"]}, ensure_ascii=False)
    if bucket == 1 and STRICT_MARK not in prompt:  # cut off, then good on the stricter retry
        return json.dumps(good, ensure_ascii=False)[:60]
    return json.dumps(good, ensure_ascii=False)


def main() -> None:
    from tests.fake_openai_server import FakeOpenAIServer

    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible captioner on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8311)
    args = parser.parse_args()
    with FakeOpenAIServer(default="compose", port=args.port) as server:
        print(f"fake captioner at {server.base_url} (model name: any)", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
