"""The key terms of an edit: what every instruction must name, in its language, for the reply to
be about the edit that was made. They come from the template slots the recipe already filled
(`edit.slots_en` and `edit.slots_zh`), so the captioner and the templates agree on the words."""

from __future__ import annotations

import re
from dataclasses import dataclass

# per task, the slots an instruction must name; the other slots are shown to the model as hints
KEY_SLOTS: dict[str, tuple[str, ...]] = {
    "subject_remove": ("object",),
    "subject_add": ("object",),
    "subject_replace": ("old", "new"),
    "color_alteration": ("object", "color"),
    "material_modification": ("object", "material"),
    "text_modification": ("new", "old"),
    "motion_change": ("object",),  # only when an annotation named the subject (else a generic noun)
}
# slots whose words are literal text in the picture: matched exactly, case included, in both
# languages, and left out of the language check; the old words may appear but need not
VERBATIM = {("text_modification", "new"), ("text_modification", "old")}
OPTIONAL_SLOTS = {("text_modification", "old")}
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    slot: str
    en: str
    zh: str
    verbatim: bool = False
    required: bool = True  # False: only exempt from the language check (the old words of a text edit)

    def in_english(self, text: str) -> bool:
        if self.verbatim:
            return self.en in text
        words = r"\s+".join(re.escape(w) for w in self.en.split())
        return re.search(rf"(?<![A-Za-z]){words}(?:s|es)?(?![A-Za-z])", text, re.IGNORECASE) is not None

    def in_chinese(self, text: str) -> bool:
        if self.verbatim:
            return self.zh in text
        # a colour is often written without its 色 (红色 -> 红的, 变红)
        options = {self.zh, self.zh[:-1] if self.zh.endswith("色") and len(self.zh) > 1 else self.zh}
        return any(o.lower() in text.lower() for o in options)


def key_terms(task: str, edit: dict) -> list[Term]:
    """The terms every instruction of this row must name (and, not required, literal words it may
    quote)."""
    if task == "motion_change" and edit.get("object_source") != "annotation":
        return []
    slots_en, slots_zh = edit.get("slots_en") or {}, edit.get("slots_zh") or {}
    out = []
    for slot in KEY_SLOTS.get(task, ()):
        en, zh = slots_en.get(slot), slots_zh.get(slot)
        if not en or not zh:
            continue
        key = (task, slot)
        out.append(Term(slot, _ARTICLE.sub("", str(en)).strip(), str(zh).strip(), key in VERBATIM, key not in OPTIONAL_SLOTS))
    return out


def hint_terms(task: str, edit: dict) -> dict[str, dict[str, str]]:
    """Every filled slot, English and Chinese side by side: what the prompt shows the model."""
    slots_en, slots_zh = edit.get("slots_en") or {}, edit.get("slots_zh") or {}
    return {slot: {"en": str(slots_en[slot]), "zh": str(slots_zh.get(slot, slots_en[slot]))} for slot in sorted(slots_en)}


def without_terms(text: str, terms: list[Term], lang: str) -> str:
    """The text with the key terms cut out, so a term in the other script (Chinese words to
    render in an English instruction, an untranslated label in a Chinese one) does not count
    against the language check."""
    for term in terms:
        word = term.en if lang == "en" else term.zh
        text = text.replace(word, " ") if term.verbatim else re.sub(re.escape(word), " ", text, flags=re.IGNORECASE)
    return text
