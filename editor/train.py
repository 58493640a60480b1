"""Rectified-flow training of the editor on cached conditioning, with checkpoints and resume.

The MLLM is frozen, so each row's hidden states are computed once before training; the source
and target latents likewise. Every step draws its batch, timesteps and noise from a generator
seeded by (seed, step): a resumed run continues exactly as an uninterrupted one would."""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from editor import checkpoint
from editor.connector import pad_tokens
from editor.flow import noisy, sample_timesteps, velocity_target
from editor.model import Editor


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 400
    batch_size: int = 8
    lr: float = 5e-4
    warmup: int = 40
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100
    t_mean: float = 0.0  # logit-normal timesteps: sigmoid(N(t_mean, t_std))
    t_std: float = 1.0
    min_crop: float = 0.6  # augmentation: random crops of at least this share of the side; 1 turns it off
    ema_decay: float = 0.995  # sampling uses this moving average of the weights; 0 turns it off
    drop_instruction: float = 0.0  # share of rows shown without their instruction, so sampling can guide


@dataclass
class TrainData:
    source: torch.Tensor  # (N, 3, S, S) source images in [0, 1], S >= size (room to crop)
    target: torch.Tensor  # (N, 3, S, S) target images
    hidden: list[torch.Tensor]  # N x (L_i, D) MLLM hidden states
    size: int  # the side the DiT trains at
    null_hidden: list[torch.Tensor] | None = None  # the same sources read with an empty instruction

    def fingerprint(self) -> str:
        """Identifies the data a checkpoint was trained on, so a resume never mixes datasets."""
        digest = hashlib.sha256()
        for tensor in (self.source, self.target, *self.hidden, *(self.null_hidden or [])):
            digest.update(tensor.float().numpy().tobytes())
        return digest.hexdigest()[:16]


def augment(source: torch.Tensor, target: torch.Tensor, size: int, gen: torch.Generator, min_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random crop (side min_scale..1 of the image) and mirror for a source and its
    target, resized to size. With a few hundred photos, crops are what teaches the DiT to carry
    the source through rather than to recall the training photos."""
    side = source.shape[-1]
    out_s, out_t = [], []
    for s, t in zip(source, target):
        scale = min_scale + (1 - min_scale) * float(torch.rand((), generator=gen))
        crop = max(1, round(side * scale))
        y, x = (int(torch.randint(side - crop + 1, (), generator=gen)) for _ in range(2))
        pair = torch.stack([s, t])[:, :, y : y + crop, x : x + crop]
        # one of the eight flips and quarter turns: global edits do not depend on orientation
        if torch.rand((), generator=gen) < 0.5:
            pair = pair.flip(-1)
        pair = torch.rot90(pair, int(torch.randint(4, (), generator=gen)), dims=(-2, -1))
        pair = torch.nn.functional.interpolate(pair, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out_s.append(pair[0])
        out_t.append(pair[1])
    return torch.stack(out_s).clamp(0, 1), torch.stack(out_t).clamp(0, 1)


def _lr_scale(step: int, warmup: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to zero: short runs gain most from the decay."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def train(editor: Editor, codec, data: TrainData, settings: TrainSettings, ckpt_dir: Path | None = None,
          log: Callable[[str], None] = print, device: torch.device | str = "cpu") -> list[tuple[int, float]]:
    """Trains to `settings.steps` and returns the loss history [(step, loss)]; picks up from the
    checkpoint in `ckpt_dir` when it was written for the same model, data and settings."""
    editor.to(device).train()
    params = [p for p in editor.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    ema = {name: p.detach().clone() for name, p in editor.named_parameters()} if settings.ema_decay > 0 else None
    identity = {"settings": asdict(settings), "shapes": editor.shapes(), "codec": codec.describe(), "data": data.fingerprint()}
    history: list[tuple[int, float]] = []
    start, spent = 0, 0.0  # spent: training seconds of earlier invocations
    latest = ckpt_dir / checkpoint.LATEST if ckpt_dir else None
    if latest is not None and latest.exists():
        meta = checkpoint.read_meta(latest)
        if all(meta.get(k) == v for k, v in identity.items()):
            checkpoint.load(latest, editor, optimizer, ema)
            start, history = meta["step"], [tuple(p) for p in meta["history"]]
            spent = float(meta.get("train_seconds", 0.0))
            log(f"resumed from {latest} at step {start}")
        else:
            log(f"ignoring {latest}: written for other data, shapes or settings")
    if settings.drop_instruction > 0 and data.null_hidden is None:
        raise ValueError("drop_instruction needs each row's hidden states without an instruction (TrainData.null_hidden)")
    n = data.source.shape[0]
    grid = codec.grid(data.size, data.size)
    began = time.perf_counter()
    for step in range(start, settings.steps):
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
        index = torch.randint(n, (min(settings.batch_size, n),), generator=gen)
        src_img, tgt_img = augment(data.source[index], data.target[index], data.size, gen, settings.min_crop)
        x0, source = codec.encode(tgt_img.to(device)), codec.encode(src_img.to(device))
        t = sample_timesteps(len(index), gen, settings.t_mean, settings.t_std).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(x0.device)
        hidden, mask = pad_tokens(conditioning(data, index.tolist(), settings.drop_instruction, gen))
        v = editor.velocity(noisy(x0, noise, t), source, hidden.to(device), mask.to(device), t, grid)
        loss = torch.nn.functional.mse_loss(v, velocity_target(x0, noise))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step + 1}; the last checkpoint is "
                                     f"intact: lower editor.train.lr or raise editor.train.warmup")
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * _lr_scale(step, settings.warmup, settings.steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        if ema is not None:
            update_ema(ema, editor, settings.ema_decay, step)
        history.append((step + 1, loss.item()))
        done = step + 1
        if ckpt_dir is not None and (done % settings.checkpoint_every == 0 or done == settings.steps):
            checkpoint.save(ckpt_dir, editor, optimizer, {**identity, "step": done, "history": history,
                            "train_seconds": round(spent + time.perf_counter() - began, 1)}, ema)
        if done % max(1, settings.steps // 10) == 0 or done == settings.steps:
            recent = [l for _, l in history[-20:]]
            rate = (done - start) / max(1e-9, time.perf_counter() - began)
            log(f"step {done}/{settings.steps}  loss {sum(recent) / len(recent):.4f}  {rate:.1f} steps/s")
    if ema is not None:  # the averaged weights are the ones to sample with
        with torch.no_grad():
            for name, p in editor.named_parameters():
                p.copy_(ema[name])
    editor.eval()
    return history


def conditioning(data: TrainData, rows: list[int], drop: float, gen: torch.Generator) -> list[torch.Tensor]:
    """The rows' hidden states, a `drop` share of them read without the instruction: the model
    learns the edit a photo suggests on its own, the baseline that guidance pushes away from.
    Drawn after the noise, so drop = 0 leaves every other draw of the step as it was."""
    if drop <= 0:
        return [data.hidden[i] for i in rows]
    dropped = (torch.rand(len(rows), generator=gen) < drop).tolist()
    return [data.null_hidden[i] if d else data.hidden[i] for i, d in zip(rows, dropped)]


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], editor: torch.nn.Module, decay: float, step: int) -> None:
    """An exponential moving average whose decay ramps up over the first steps, so the average
    does not remember the random initialisation for long."""
    rate = min(decay, (1 + step) / (10 + step))
    for name, p in editor.named_parameters():
        ema[name].lerp_(p.detach(), 1 - rate)


@torch.no_grad()
def sample(editor: Editor, source: torch.Tensor, hidden: list[torch.Tensor], grid: tuple[int, int], steps: int,
           seed: int = 0, batch_size: int = 16, device: torch.device | str = "cpu", start_t: float = 1.0,
           guidance: float = 1.0, null_hidden: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Target latent tokens for each source through the Euler sampler: from seeded noise
    (start_t = 1), or from the source's own tokens noised to start_t (SDEdit), which keeps the
    layout a small model would otherwise have to redraw. With guidance != 1 the velocity is
    v_null + guidance (v - v_null), v_null read without the instruction (classifier-free
    guidance on the instruction, as InstructPix2Pix guides its text)."""
    if guidance != 1 and null_hidden is None:
        raise ValueError("guidance needs the sources' hidden states without an instruction (null_hidden)")
    from editor.flow import euler_sample

    editor.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(source.shape, generator=gen)
    out = []
    for lo in range(0, source.shape[0], batch_size):
        src = source[lo : lo + batch_size].to(device)
        h, m = pad_tokens(hidden[lo : lo + batch_size])
        h, m = h.to(device), m.to(device)

        def conditional(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # called within this iteration only
            return editor.velocity(x, src, h, m, t, grid)

        velocity = conditional
        if guidance != 1:
            hn, mn = (x.to(device) for x in pad_tokens(null_hidden[lo : lo + batch_size]))

            def unconditional(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return editor.velocity(x, src, hn, mn, t, grid)

            velocity = guided(conditional, unconditional, guidance)
        t0 = torch.full((src.shape[0],), float(start_t), device=device)
        start = noisy(src, noise[lo : lo + batch_size].to(device), t0)
        out.append(euler_sample(velocity, start, steps, start_t).cpu())
    return torch.cat(out)


def guided(conditional, unconditional, scale: float):
    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_null = unconditional(x, t)
        return v_null + scale * (conditional(x, t) - v_null)

    return velocity
