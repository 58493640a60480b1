"""Rectified flow: straight paths from the target latent (t = 0) to noise (t = 1), a velocity
target, logit-normal timesteps, and an Euler sampler that walks the path back."""

from __future__ import annotations

from typing import Callable

import torch


def sample_timesteps(n: int, generator: torch.Generator | None = None, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """Logit-normal t in (0, 1): sigmoid of a normal, which weights the middle of the path, where
    the velocity is hardest to predict (Esser et al., 2024)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def noisy(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise, with t broadcast over the token dimensions."""
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / d t along the straight path."""
    return noise - x0


def euler_sample(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int,
                 t_start: float = 1.0) -> torch.Tensor:
    """Integrates dx/dt = velocity(x, t) from t = t_start to t = 0 in `steps` equal steps. From
    t = 1 `start` is pure noise; from t < 1 it is a point on the path (SDEdit's start)."""
    if steps < 1:
        raise ValueError("the sampler needs at least one step")
    if not 0 < t_start <= 1:
        raise ValueError(f"the sampler starts at a t in (0, 1], not {t_start}")
    x = start
    ts = torch.linspace(t_start, 0.0, steps + 1)
    for t, t_next in zip(ts[:-1], ts[1:]):
        v = velocity(x, t.expand(x.shape[0]).to(x.device))
        x = x + (t_next - t) * v
    return x
