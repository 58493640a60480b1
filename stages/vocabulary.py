"""Bilingual names: colours with their sRGB values, and object labels in Chinese."""

from __future__ import annotations

# name: (English, Chinese, sRGB)
COLORS: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "red": ("red", "红色", (200, 30, 35)),
    "orange": ("orange", "橙色", (240, 130, 20)),
    "yellow": ("yellow", "黄色", (240, 210, 30)),
    "green": ("green", "绿色", (40, 160, 60)),
    "cyan": ("cyan", "青色", (0, 170, 190)),
    "blue": ("blue", "蓝色", (30, 70, 200)),
    "purple": ("purple", "紫色", (120, 50, 170)),
    "pink": ("pink", "粉色", (240, 120, 170)),
}

# COCO's 80 categories plus the labels of the bundled samples.
OBJECT_ZH: dict[str, str] = {
    "person": "人", "bicycle": "自行车", "car": "汽车", "motorcycle": "摩托车", "airplane": "飞机",
    "bus": "公交车", "train": "火车", "truck": "卡车", "boat": "船", "traffic light": "红绿灯",
    "fire hydrant": "消防栓", "stop sign": "停车标志", "parking meter": "停车计时器", "bench": "长椅",
    "bird": "鸟", "cat": "猫", "dog": "狗", "horse": "马", "sheep": "羊", "cow": "牛",
    "elephant": "大象", "bear": "熊", "zebra": "斑马", "giraffe": "长颈鹿", "backpack": "背包",
    "umbrella": "雨伞", "handbag": "手提包", "tie": "领带", "suitcase": "行李箱", "frisbee": "飞盘",
    "skis": "滑雪板", "snowboard": "单板滑雪板", "sports ball": "球", "kite": "风筝",
    "baseball bat": "棒球棒", "baseball glove": "棒球手套", "skateboard": "滑板", "surfboard": "冲浪板",
    "tennis racket": "网球拍", "bottle": "瓶子", "wine glass": "酒杯", "cup": "杯子", "fork": "叉子",
    "knife": "刀", "spoon": "勺子", "bowl": "碗", "banana": "香蕉", "apple": "苹果",
    "sandwich": "三明治", "orange": "橙子", "broccoli": "西兰花", "carrot": "胡萝卜", "hot dog": "热狗",
    "pizza": "披萨", "donut": "甜甜圈", "cake": "蛋糕", "chair": "椅子", "couch": "沙发",
    "potted plant": "盆栽", "bed": "床", "dining table": "餐桌", "toilet": "马桶", "tv": "电视",
    "laptop": "笔记本电脑", "mouse": "鼠标", "remote": "遥控器", "keyboard": "键盘", "cell phone": "手机",
    "microwave": "微波炉", "oven": "烤箱", "toaster": "烤面包机", "sink": "水槽", "refrigerator": "冰箱",
    "book": "书", "clock": "时钟", "vase": "花瓶", "scissors": "剪刀", "teddy bear": "泰迪熊",
    "hair drier": "吹风机", "toothbrush": "牙刷",
    "spacesuit": "宇航服", "helmet": "头盔", "flag": "旗帜", "space shuttle model": "航天飞机模型",
    "eye": "眼睛", "nose": "鼻子", "saucer": "碟子", "rocket": "火箭", "launch tower": "发射塔",
    "fuel tank": "油箱", "storage box": "收纳箱", "face": "脸", "ball": "球",
}


def object_zh(label: str) -> str | None:
    return OBJECT_ZH.get(label.lower())
