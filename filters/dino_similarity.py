"""DINOv2 similarity between source and target (gpu profile): the cosine of the two pictures'
class-token features from a timm DINOv2 ViT. Too low and the target is another picture
(UltraEdit keeps >= 0.4); too high and nothing was edited (X2Edit drops > 0.95 as a no-op).

The checkpoint loads through timm's own loader: `hf-hub:<repo>[@revision]` for a hub id (the
HF cache serves it offline), `local-dir:<folder>` for a folder, which must hold safetensors."""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import cv2
import numpy as np

from filters.common_gates import ModelGateStage, cosine_rows
from filters.gates import GateResult
from pipeline.core.rows import record_stage
from pipeline.core.stage import ModelUse, Row
from stages.models.torch_device import device_and_dtype, dtype_name


def timm_name(model_ref: str, revision: str | None = None) -> str:
    """The name timm's `create_model` loads `model_ref` by."""
    folder = pathlib.Path(model_ref)
    if folder.is_dir():
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"{folder}: no model.safetensors (only safetensors checkpoints are loaded)")
        return f"local-dir:{folder}"
    return f"hf-hub:{model_ref}" + (f"@{revision}" if revision else "")


def dino_gate_results(similarity: float, limits: dict) -> list[GateResult]:
    return [
        GateResult.at_least("dino_similarity", similarity, limits["min_dino"]),
        GateResult.at_most("dino_noop", similarity, limits["max_dino"]),
    ]


class DinoEncoder:
    """A timm DINOv2 with its own preprocessing (input size, mean, std from its config)."""

    def __init__(self, model_ref: str, revision: str | None = None, batch_size: int = 16):
        import timm

        self.model_ref, self.revision, self.batch_size = model_ref, revision, batch_size
        self.device, self.dtype = device_and_dtype()
        model = timm.create_model(timm_name(model_ref, revision), pretrained=True, num_classes=0)
        self.model = model.to(self.device, self.dtype).eval()
        config = self.model.pretrained_cfg
        self.size = (int(config["input_size"][2]), int(config["input_size"][1]))  # (width, height)
        self.mean = np.asarray(config["mean"], np.float32)
        self.std = np.asarray(config["std"], np.float32)

    def _pixels(self, images: Sequence[np.ndarray]):
        import torch

        # the whole picture is resized (not cropped), so an edit at its border still counts
        batch = np.stack([cv2.resize(np.asarray(img), self.size, interpolation=cv2.INTER_CUBIC) for img in images])
        batch = (batch.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(batch.transpose(0, 3, 1, 2)).to(self.device, self.dtype)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Class-token features, one row per image."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunks.append(self.model(self._pixels(images[start : start + self.batch_size])).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.model.num_features), np.float32)

    def similarity(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> np.ndarray:
        features = self.embed(list(sources) + list(targets))
        return cosine_rows(features[: len(sources)], features[len(sources) :])

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_ref, "revision": self.revision, "dtype": dtype_name(self.dtype)}


class DinoSimilarityStage(ModelGateStage):
    name = "dino_gate"
    reads = ("status", "task", "source_image", "target_image", "scores?")
    writes = ("scores", "status", "reason", "provenance")
    model = ModelUse("dinov2", "dinov2")

    def load(self) -> DinoEncoder:
        return DinoEncoder(self.model_ref, self.revision, int(self.limits.get("dino_batch_size", 16)))

    def gate_batch(self, rows: list[Row], sources, targets) -> list[list[GateResult]]:
        out = []
        for row, similarity in zip(rows, self.encoder.similarity(sources, targets)):
            record_stage(row, self.name, **self.encoder.describe())
            out.append(dino_gate_results(float(similarity), self.limits_for(row)))
        return out
