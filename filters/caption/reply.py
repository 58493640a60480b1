"""A captioner reply checked before any of it reaches a row: the JSON shape, each field in its
language (Chinese fields have Chinese characters, English ones none), length bounds, the edit's
key terms in every instruction, no refusal, and two registers that differ. Anything that fails
is reported with its reason, never patched up."""

from __future__ import annotations

import re

from filters.caption.prompt import REPLY_KEYS
from filters.caption.terms import Term, without_terms
from stages.models.mllm_json import ParsedReply, parse_reply
from stages.models.openai_client import is_refusal

SCHEMA = {key: str for key in REPLY_KEYS}
# characters, inclusive: (shortest, longest); Chinese needs fewer characters for the same words
LENGTHS = {
    "imperative_en": (8, 120),
    "imperative_zh": (4, 60),
    "descriptive_en": (20, 320),
    "descriptive_zh": (8, 160),
    "source_caption": (8, 200),
    "target_caption": (8, 200),
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_LATIN = re.compile(r"[A-Za-z]")
_REFUSAL_ZH = re.compile(r"抱歉|对不起|我无法|我不能|无法提供|不能帮助")


def language(key: str) -> str:
    return "zh" if key.endswith("_zh") else "en"


def _field_problem(key: str, text: str, terms: list[Term]) -> str | None:
    low, high = LENGTHS[key]
    if not low <= len(text) <= high:
        return f"{key} has {len(text)} characters (allowed {low} to {high})"
    if is_refusal(text) or _REFUSAL_ZH.search(text):
        return f"{key} is a refusal"
    lang = language(key)
    rest = without_terms(text, terms, lang)
    if lang == "en":
        if _CJK.search(rest):
            return f"{key} has Chinese characters"
        if len(_LATIN_WORD.findall(rest)) < 2:
            return f"{key} is not English"
    else:
        cjk = len(_CJK.findall(rest))
        if cjk < 2 or len(_LATIN.findall(rest)) > cjk:
            return f"{key} is not Chinese"
    if key.startswith(("imperative", "descriptive")):
        for term in (t for t in terms if t.required):
            found = term.in_english(text) if lang == "en" else term.in_chinese(text)
            if not found:
                return f"{key} does not name the {term.slot} \"{term.en if lang == 'en' else term.zh}\""
    return None


def read_caption(text: str | None, terms: list[Term]) -> ParsedReply:
    """{imperative: {en, zh}, descriptive: {en, zh}, source_caption, target_caption}, or why not."""
    parsed = parse_reply(text, SCHEMA)
    if not parsed.ok:
        return parsed
    value = {key: " ".join(parsed.value[key].split()) for key in REPLY_KEYS}  # one line each
    for key in REPLY_KEYS:
        problem = _field_problem(key, value[key], terms)
        if problem:
            return ParsedReply(None, problem)
    for lang in ("en", "zh"):
        if value[f"imperative_{lang}"].lower() == value[f"descriptive_{lang}"].lower():
            return ParsedReply(None, f"the two {lang} registers are the same sentence")
    return ParsedReply(
        {
            "registers": {reg: {lang: value[f"{reg}_{lang}"] for lang in ("en", "zh")} for reg in ("imperative", "descriptive")},
            "source_caption": value["source_caption"],
            "target_caption": value["target_caption"],
        }
    )
