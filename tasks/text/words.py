"""The words of text edits: signs to render on photos that have no text (English and Chinese
lines), the replacements each sign word may take, and replacements for words read by OCR."""

from __future__ import annotations

import random

# (English line, Chinese line, kind of sign)
SIGN_TEXTS: list[tuple[str, str, str]] = [
    ("OPEN", "营业中", "sign"),
    ("EXIT", "出口", "sign"),
    ("COFFEE", "咖啡", "sign"),
    ("SALE", "特价", "poster"),
    ("WELCOME", "欢迎光临", "sign"),
    ("FRAGILE", "易碎品", "label"),
    ("NO PARKING", "禁止停车", "sign"),
    ("FRESH", "新鲜", "label"),
    ("SUMMER", "夏日", "poster"),
]

# a word -> what it may become; chosen so that old and new differ clearly when read back
REPLACEMENTS: dict[str, list[str]] = {
    "OPEN": ["CLOSED", "SOLD OUT", "BACK SOON"],
    "EXIT": ["ENTRANCE", "NO EXIT", "LOBBY"],
    "COFFEE": ["TEA", "JUICE", "BAKERY"],
    "SALE": ["NEW", "HOT DEALS", "SOLD"],
    "WELCOME": ["GOODBYE", "THANK YOU", "HELLO"],
    "FRAGILE": ["HEAVY", "KEEP DRY", "THIS SIDE UP"],
    "NO PARKING": ["NO ENTRY", "BUS STOP", "TAXI"],
    "FRESH": ["ORGANIC", "LOCAL", "FROZEN"],
    "SUMMER": ["WINTER", "AUTUMN", "SPRING"],
    "营业中": ["休息中", "暂停营业", "已售罄"],
    "出口": ["入口", "安全出口", "大厅"],
    "咖啡": ["奶茶", "果汁", "面包"],
    "特价": ["新品", "热卖", "清仓"],
    "欢迎光临": ["谢谢惠顾", "欢迎再来", "您好"],
    "易碎品": ["小心轻放", "防潮", "向上"],
    "禁止停车": ["禁止通行", "停车场", "公交站"],
    "新鲜": ["有机", "本地", "冷冻"],
    "夏日": ["冬日", "秋日", "春日"],
}

# for text found in a photo that none of the lists above knows
GENERIC_EN = ["HELLO", "CLOSED", "MARKET", "STUDIO", "GARDEN", "LIBRARY", "BAKERY", "TICKETS", "CAFE", "HOTEL", "SCHOOL", "MUSEUM"]
GENERIC_ZH = ["欢迎", "出口", "书店", "花园", "面包店", "博物馆", "售票处", "咖啡馆", "学校", "超市"]

KIND_NAMES = {"sign": ("sign", "招牌"), "label": ("label", "标签"), "poster": ("poster", "海报"), "photo": ("image", "图片")}


def _same_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like.istitle():
        return word.title()
    if like.islower():
        return word.lower()
    return word


def _norm(text: str) -> str:
    return "".join(text.split()).casefold()


def replacement_options(text: str, is_chinese: bool) -> list[str]:
    """What `text` may become: its listed replacements, else words of its language and about its
    length; digits become other digits."""
    known = REPLACEMENTS.get(text.strip().upper()) or REPLACEMENTS.get(text.strip())
    if known:
        return [_same_case(w, text) for w in known]
    stripped = text.strip()
    if stripped.isdigit():
        return [str((int(stripped) + k * 37) % 10 ** len(stripped)).zfill(len(stripped)) for k in (1, 2, 3)]
    pool = GENERIC_ZH if is_chinese else GENERIC_EN
    close = [w for w in pool if abs(len(w) - len(stripped)) <= 3] or pool
    return [_same_case(w, stripped) for w in close if _norm(w) != _norm(stripped)]


def choose_replacements(text: str, is_chinese: bool, count: int, rng: random.Random) -> list[str]:
    options = [w for w in replacement_options(text, is_chinese) if _norm(w) != _norm(text)]
    return rng.sample(options, min(count, len(options)))
