"""Frames for motion edits: check that a clip is long and sharp enough, pick evenly strided
frames, and leave them on the row at the working size of its source image."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import encode_image
from pipeline.core.rows import mark, record_stage, set_blob, update_work, work
from pipeline.core.stage import Resources, Row, Stage
from stages.video import read_frames


def sample_indices(frame_count: int, stride: int, max_frames: int) -> list[int]:
    """Every `stride`-th frame from the first; a long clip widens the stride so at most
    `max_frames` are taken, spread over the whole clip."""
    if frame_count <= 0:
        return []
    stride = max(1, stride)
    taken = list(range(0, frame_count, stride))
    if len(taken) <= max_frames:
        return taken
    return sorted({int(round(i)) for i in np.linspace(0, frame_count - 1, max_frames)})


def clip_problem(info: dict, min_seconds: float, min_short_side: int) -> str | None:
    """Why a clip cannot give motion pairs, or None. Resolution is the short side, so a portrait
    clip of 240 x 426 is 240p too."""
    seconds = info.get("seconds")
    if seconds is None:
        return "clip length unknown (no frame rate)"
    if seconds < min_seconds:
        return f"clip is {seconds:.2f} s long, shorter than {min_seconds:g} s"
    short = min(info["width"], info["height"])
    if short < min_short_side:
        return f"clip is {info['width']}x{info['height']}, below {min_short_side}p"
    return None


class MotionFramesStage(Stage):
    """Writes blobs `frame:<k>` (PNG at the row's working size) and work["motion_frames"], one
    {index, time} per sampled frame k."""

    name = "motion_frames"
    reads = ("work.video", "_input", "width", "height")
    writes = ("blob.frame:*", "work.motion_frames", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=2)

    def __init__(self, tasks: tuple[str, ...], stride: int, max_frames: int, min_seconds: float, min_short_side: int):
        self.tasks = tasks
        self.stride, self.max_frames = stride, max_frames
        self.min_seconds, self.min_short_side = min_seconds, min_short_side

    def process_row(self, row: Row) -> Row:
        info = work(row).get("video")
        if not info:
            return mark(row, schema.SKIPPED, f"{self.name}: not a video input")
        problem = clip_problem(info, self.min_seconds, self.min_short_side)
        if problem:
            return mark(row, schema.SKIPPED, f"{self.name}: {problem}")
        path = schema.loads(row["_input"])["path"]
        size = (int(row["width"]), int(row["height"]))
        fps = info["fps"]
        sampled = []
        for index, rgb in read_frames(path, sample_indices(info["frames"], self.stride, self.max_frames)):
            if (rgb.shape[1], rgb.shape[0]) != size:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            set_blob(row, f"frame:{len(sampled)}", encode_image(rgb))
            sampled.append({"index": index, "time": round(index / fps, 3)})
        if len(sampled) < 2:
            return mark(row, schema.SKIPPED, f"{self.name}: fewer than 2 frames could be decoded")
        update_work(row, motion_frames=sampled)
        record_stage(row, self.name, stride=self.stride, max_frames=self.max_frames, sampled=len(sampled))
        return row
