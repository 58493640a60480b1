"""Image batches as `verify` handles them: uint8 HxWx3 arrays in and out, (N, 3, H, W) floats in
[0, 1] in between."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 images -> (N, 3, H, W) floats in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def shrink(images: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    return [np.ascontiguousarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for x in images]
