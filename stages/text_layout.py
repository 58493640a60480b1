"""Where a line of text sits and how it is drawn: a rotated rectangle per line (its frame), fonts,
and the warps between a line's upright patch and the image."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.core.fonts import cjk_font


def font(weight: str, px: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK SC, "regular" or "bold", from pip packages (pipeline/core/fonts.py)."""
    return cjk_font(weight, max(4, int(px)))


def is_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def language(text: str) -> str:
    return "zh" if is_cjk(text) else "en"


def ink_box(text: str, weight: str, px: int) -> tuple[int, int, int, int]:
    """Inked extent (x0, y0, x1, y1) of `text` drawn at the origin."""
    return font(weight, px).getbbox(text)


def ink_size(text: str, weight: str, px: int) -> tuple[int, int]:
    x0, y0, x1, y1 = ink_box(text, weight, px)
    return x1 - x0, y1 - y0


@dataclass(frozen=True)
class Frame:
    """A rotated rectangle: centre, size, and the angle of its top edge in degrees (image y points
    down, so a positive angle turns the text clockwise)."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float

    def to_dict(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Frame":
        return cls(**{k: float(data[k]) for k in ("cx", "cy", "width", "height", "angle")})

    def patch_to_image(self) -> np.ndarray:
        """2x3 affine taking upright patch pixels (u, v) to image pixels."""
        c, s = math.cos(math.radians(self.angle)), math.sin(math.radians(self.angle))
        hw, hh = self.width / 2, self.height / 2
        return np.array([[c, -s, self.cx - c * hw + s * hh], [s, c, self.cy - s * hw - c * hh]], np.float64)

    def corners(self) -> np.ndarray:
        """TL, TR, BR, BL in image pixels."""
        upright = np.array([[0, 0, 1], [self.width, 0, 1], [self.width, self.height, 1], [0, self.height, 1]], np.float64)
        return upright @ self.patch_to_image().T

    def grown(self, dx: float, dy: float) -> "Frame":
        return Frame(self.cx, self.cy, self.width + 2 * dx, self.height + 2 * dy, self.angle)

    def size(self) -> tuple[int, int]:
        return max(1, int(round(self.width))), max(1, int(round(self.height)))


def order_quad(points) -> np.ndarray:
    """Four corners in the order TL, TR, BR, BL, whatever order a detector gave them in."""
    pts = np.asarray(points, np.float64).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # clockwise on screen, starting somewhere
    start = int(np.argmin(pts.sum(axis=1)))  # the top-left has the smallest x + y
    return np.roll(pts, -start, axis=0)


def frame_from_quad(points) -> Frame:
    tl, tr, br, bl = order_quad(points)
    width = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    edge = (tr - tl) + (br - bl)
    angle = math.degrees(math.atan2(edge[1], edge[0]))
    cx, cy = np.mean([tl, tr, br, bl], axis=0)
    return Frame(float(cx), float(cy), float(width), float(height), float(angle))


def frame_mask(frame: Frame, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(frame.corners()).astype(np.int32)], 1)
    return mask.astype(bool)


def extract_patch(image: np.ndarray, frame: Frame, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The frame's content, turned upright."""
    return cv2.warpAffine(
        image, frame.patch_to_image(), frame.size(), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def patch_to_image(patch: np.ndarray, frame: Frame, shape: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """An upright patch laid back into an image of `shape`; zero outside the frame."""
    return cv2.warpAffine(patch, frame.patch_to_image(), (shape[1], shape[0]), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def draw_text_alpha(text: str, weight: str, px: int, size: tuple[int, int], ink_centre: tuple[float, float]) -> np.ndarray:
    """Coverage (0..1, float32, HxW) of `text` in a patch of `size` (w, h), its ink box centred on
    `ink_centre`. Drawn 4x larger and reduced, so strokes are smoothly antialiased."""
    scale = 4
    w, h = size
    canvas = Image.new("L", (w * scale, h * scale), 0)
    x0, y0, x1, y1 = ink_box(text, weight, px * scale)
    origin = (ink_centre[0] * scale - (x0 + x1) / 2, ink_centre[1] * scale - (y0 + y1) / 2)
    ImageDraw.Draw(canvas).text(origin, text, font=font(weight, px * scale), fill=255)
    small = cv2.resize(np.asarray(canvas, np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(small, 0.0, 1.0)


def paint_text(image: np.ndarray, text: str, weight: str, px: int, rgb, frame: Frame, ink_centre: tuple[float, float] | None = None) -> np.ndarray:
    """`image` with `text` drawn in colour `rgb` inside `frame` (centred unless `ink_centre`, in
    the frame's upright pixels, says otherwise)."""
    w, h = frame.size()
    centre = ink_centre or (w / 2, h / 2)
    alpha = draw_text_alpha(text, weight, px, (w, h), centre)
    laid = patch_to_image(alpha, frame, image.shape[:2])[..., None]
    colour = np.asarray(rgb, np.float32).reshape(1, 1, 3)
    out = image.astype(np.float32) * (1.0 - laid) + colour * laid
    return np.clip(np.round(out), 0, 255).astype(np.uint8)
