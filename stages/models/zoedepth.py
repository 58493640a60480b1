"""Metric depth with ZoeDepth, kept on the row as a 16-bit PNG blob for the depth ControlNet.

Usage checked against transformers' models/zoedepth/modeling_zoedepth.py
(`ZoeDepthForDepthEstimation.forward` example, Intel/zoedepth-nyu-kitti): the image processor,
one forward pass, then `post_process_depth_estimation(outputs, source_sizes=...)` back to each
image's size, in metres. How the depth ControlNet wants depth drawn is in sd3_controlnet.py."""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np

from pipeline.core.image_io import decode_image
from pipeline.core.rows import blob, record_stage, set_blob, update_work, work
from pipeline.core.stage import ModelStage, ModelUse, Resources, Row
from stages.models.torch_device import dtype_name, load_model

DEPTH_BLOB = "depth"
_UNITS = 65535  # the top of uint16


def encode_depth_png16(depth_m: np.ndarray) -> tuple[bytes, float]:
    """Depth in metres as a uint16 PNG and its metres-per-unit factor, chosen so the farthest pixel
    uses the full 16-bit range (sub-millimetre steps indoors, centimetres at 80 m)."""
    depth = np.nan_to_num(depth_m.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    far = float(depth.max()) if depth.size else 0.0
    metres_per_unit = far / _UNITS if far > 0 else 1.0
    units = np.clip(np.round(depth / metres_per_unit), 0, _UNITS).astype(np.uint16)
    ok, buf = cv2.imencode(".png", units)
    if not ok:
        raise RuntimeError("could not encode the depth map as PNG")
    return buf.tobytes(), metres_per_unit


def decode_depth_png16(data: bytes, metres_per_unit: float) -> np.ndarray:
    units = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if units is None or units.dtype != np.uint16 or units.ndim != 2:
        raise ValueError("depth blob is not a single-channel 16-bit PNG")
    return units.astype(np.float32) * np.float32(metres_per_unit)


def store_depth(row: Row, depth_m: np.ndarray) -> float:
    png, metres_per_unit = encode_depth_png16(depth_m)
    set_blob(row, DEPTH_BLOB, png)
    update_work(row, depth_metres_per_unit=metres_per_unit)
    return metres_per_unit


def read_depth(row: Row) -> np.ndarray | None:
    """The row's depth in metres (float32 HxW), or None when no depth stage ran on it."""
    data = blob(row, DEPTH_BLOB)
    if data is None:
        return None
    return decode_depth_png16(data, work(row)["depth_metres_per_unit"])


class ZoeDepthStage(ModelStage):
    name = "zoedepth"
    reads = ("source_image",)
    writes = ("blob.depth", "work.depth_metres_per_unit", "provenance")
    model = ModelUse("zoedepth", "zoedepth")

    def __init__(self, model_ref: str, tasks: tuple[str, ...] | None, revision: str | None = None, resources: Resources | None = None):
        self.model_ref = str(model_ref)
        self.revision = revision
        self.tasks = tasks
        self.resources = resources or self.resources

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs["zoedepth"]
        return cls(ref, tasks, revision)

    def setup(self) -> None:
        from transformers import AutoImageProcessor, ZoeDepthForDepthEstimation

        self.model, self.processor, self.device, self.dtype = load_model(
            ZoeDepthForDepthEstimation, AutoImageProcessor, self.model_ref, self.revision
        )

    def estimate(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Depth in metres at each image's own size. Images whose preprocessed tensors share a shape
        (the processor keeps the aspect ratio) run as one forward pass."""
        import torch

        # a writable copy: torch warns about wrapping the read-only arrays PIL decodes into
        pixels = [self.processor(images=img.copy(), return_tensors="pt")["pixel_values"] for img in images]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, tensor in enumerate(pixels):
            groups[tuple(tensor.shape)].append(i)
        depths: list[np.ndarray | None] = [None] * len(images)
        for members in groups.values():
            batch = torch.cat([pixels[i] for i in members]).to(self.device, self.dtype)
            with torch.inference_mode():
                outputs = self.model(pixel_values=batch)
            outputs.predicted_depth = outputs.predicted_depth.float().cpu()
            sizes = [images[i].shape[:2] for i in members]
            results = self.processor.post_process_depth_estimation(outputs, source_sizes=sizes, target_sizes=sizes)
            for i, result in zip(members, results):
                depths[i] = result["predicted_depth"].numpy().astype(np.float32)
        return depths  # type: ignore[return-value]

    def process_batch(self, rows: list[Row]) -> list[Row]:
        images = [decode_image(row["source_image"]["bytes"]) for row in rows]
        for row, depth in zip(rows, self.estimate(images)):
            metres_per_unit = store_depth(row, depth)
            record_stage(
                row,
                self.name,
                model=self.model_ref,
                revision=self.revision,
                dtype=dtype_name(self.dtype),
                metres_per_unit=metres_per_unit,
                depth_range_m=[round(float(depth.min()), 4), round(float(depth.max()), 4)],
            )
        return rows
