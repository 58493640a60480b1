"""Words for replacement edits: plausible stand-ins per object label (what the recipe falls back
to when the multimodal model's choice is unusable), their Chinese names, and English articles."""

from __future__ import annotations

import re

from stages.vocabulary import COLORS, object_zh

# label -> things of a similar size and role that could stand in its place, best first
REPLACEMENTS: dict[str, list[str]] = {
    "cup": ["mug", "teapot", "glass", "bowl"],
    "mug": ["cup", "teapot", "glass"],
    "saucer": ["plate", "bowl"],
    "spoon": ["fork", "knife", "pair of chopsticks"],
    "fork": ["spoon", "knife"],
    "knife": ["fork", "spoon"],
    "bowl": ["plate", "cup", "vase"],
    "plate": ["bowl", "saucer"],
    "bottle": ["vase", "glass", "can"],
    "wine glass": ["cup", "bottle", "mug"],
    "vase": ["bottle", "lamp", "teapot"],
    "helmet": ["hat", "crown", "baseball cap"],
    "hat": ["helmet", "crown"],
    "flag": ["street lamp", "palm tree"],
    "rocket": ["lighthouse", "skyscraper", "tower"],
    "space shuttle model": ["airplane model", "rocket model"],
    "airplane": ["helicopter", "hot air balloon"],
    "motorcycle": ["bicycle", "scooter", "car", "horse"],
    "bicycle": ["motorcycle", "scooter"],
    "car": ["truck", "bus", "van"],
    "truck": ["bus", "car"],
    "bus": ["tram", "truck"],
    "boat": ["canoe", "yacht"],
    "storage box": ["backpack", "suitcase", "basket"],
    "backpack": ["handbag", "suitcase"],
    "handbag": ["backpack", "basket"],
    "suitcase": ["backpack", "storage box"],
    "cat": ["dog", "rabbit", "fox"],
    "dog": ["cat", "rabbit", "fox"],
    "bird": ["butterfly", "parrot"],
    "horse": ["cow", "camel", "zebra"],
    "cow": ["horse", "sheep"],
    "sheep": ["goat", "cow"],
    "person": ["robot", "statue"],
    "apple": ["orange", "pear", "peach"],
    "orange": ["apple", "lemon"],
    "banana": ["cucumber", "corn"],
    "pizza": ["cake", "pie"],
    "cake": ["pizza", "pie"],
    "donut": ["bagel", "cookie"],
    "sandwich": ["burger", "hot dog"],
    "laptop": ["book", "tablet"],
    "book": ["laptop", "magazine"],
    "cell phone": ["wallet", "remote"],
    "remote": ["cell phone"],
    "clock": ["mirror", "plate"],
    "tv": ["painting", "mirror"],
    "chair": ["stool", "armchair"],
    "couch": ["bench", "armchair"],
    "bench": ["couch", "picnic table"],
    "potted plant": ["vase", "lamp"],
    "umbrella": ["parasol"],
    "teddy bear": ["doll", "toy robot"],
}

# Chinese names of the stand-ins that stages/vocabulary.py does not know
_NEW_ZH: dict[str, str] = {
    "mug": "马克杯", "teapot": "茶壶", "glass": "玻璃杯", "plate": "盘子", "pair of chopsticks": "筷子",
    "can": "易拉罐", "lamp": "台灯", "hat": "帽子", "crown": "皇冠", "baseball cap": "棒球帽",
    "street lamp": "路灯", "palm tree": "棕榈树", "lighthouse": "灯塔", "skyscraper": "摩天大楼", "tower": "塔",
    "airplane model": "飞机模型", "rocket model": "火箭模型", "helicopter": "直升机", "hot air balloon": "热气球",
    "scooter": "踏板车", "van": "面包车", "tram": "有轨电车", "canoe": "独木舟", "yacht": "游艇",
    "basket": "篮子", "rabbit": "兔子", "fox": "狐狸", "butterfly": "蝴蝶", "parrot": "鹦鹉", "camel": "骆驼",
    "goat": "山羊", "robot": "机器人", "statue": "雕像", "pear": "梨", "peach": "桃子", "lemon": "柠檬",
    "cucumber": "黄瓜", "corn": "玉米", "pie": "馅饼", "bagel": "百吉饼", "cookie": "饼干", "burger": "汉堡",
    "tablet": "平板电脑", "magazine": "杂志", "wallet": "钱包", "mirror": "镜子", "painting": "画",
    "stool": "凳子", "armchair": "扶手椅", "picnic table": "野餐桌", "parasol": "遮阳伞", "doll": "玩偶",
    "toy robot": "玩具机器人",
}

_ARTICLE = re.compile(r"^(a|an|the|one|some)\s+", re.IGNORECASE)
_WORDS = re.compile(r"^[a-z][a-z' -]*[a-z]$")
# answers that name no object, or only an attribute
_NOT_OBJECTS = {"nothing", "none", "n/a", "unknown", "object", "thing", "something", "it", "background", "same"}


def bare_noun(text: str) -> str:
    """Lowercase, single-spaced, without a leading article."""
    return _ARTICLE.sub("", " ".join(text.strip().lower().split()))


def noun_zh(noun: str) -> str | None:
    noun = bare_noun(noun)
    return _NEW_ZH.get(noun) or object_zh(noun)


def with_article(noun: str) -> str:
    noun = bare_noun(noun)
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def replacement_problem(new: str, old: str) -> str | None:
    """Why `new` is not a usable stand-in for `old` (None when it is): it must name an object in
    one to four plain words, and a different kind of thing (a 'red cup' for a cup is a colour
    edit, not a replacement)."""
    noun, old_noun = bare_noun(new), bare_noun(old)
    if not _WORDS.match(noun) or len(noun.split()) > 4:
        return f"'{new}' is not a short object name"
    if noun in _NOT_OBJECTS or noun in COLORS:
        return f"'{new}' names no object"
    if noun.split()[-1] == old_noun.split()[-1]:
        return f"'{new}' is the same kind of thing as '{old}'"
    return None
