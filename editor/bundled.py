"""The bundled editor end to end for `verify`: encode every row once with the frozen MLLM, train
on the training rows (and again with their instructions shuffled, as a control), then edit the
held-out sources."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from editor import checkpoint
from editor.codec import PixelCodec, VaeCodec
from editor.data import Triplet
from editor.dit import DiTShape, describe
from editor.images import to_tensor, to_uint8
from editor.methods import FROM_NOISE, SHUFFLED
from editor.model import ConnectorShape, Editor
from editor.train import TrainData, TrainSettings, sample, train


def make_codec(ecfg: dict[str, Any], cfg: dict[str, Any]):
    if ecfg["codec"] == "pixels":
        return PixelCodec(int(ecfg["patch"]))
    if ecfg["codec"] == "vae":
        from editor.kontext_run import kontext_source

        ref, revision = (ecfg["vae"], None) if ecfg["vae"] else kontext_source(cfg)
        return VaeCodec.load(str(ref), revision)
    raise ValueError(f"editor.codec must be pixels or vae, not {ecfg['codec']!r}")


def make_encoder(ecfg: dict[str, Any], cfg: dict[str, Any]):
    from editor.encoder import MLLMEncoder
    from pipeline.core import models
    from stages.models.tiny import ensure_tiny

    if ecfg["encoder"]:
        ref, revision = str(ecfg["encoder"]), None
    else:
        ensure_tiny(cfg, ["qwen2_5_vl"])
        ref, revision = models.resolve(cfg, "qwen2_5_vl")
    return MLLMEncoder(ref, revision, int(ecfg["encoder_image_px"]), int(ecfg["max_tokens"]))


def encode_all(encoder, rows: list[Triplet], instructions: list[str], batch: int = 8) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for lo in range(0, len(rows), batch):
        out += encoder.encode([r.source for r in rows[lo : lo + batch]], instructions[lo : lo + batch])
    return out


def new_editor(ecfg: dict[str, Any], codec, mllm_width: int, seed: int) -> Editor:
    torch.manual_seed(seed)  # the real and the control editor start from the same weights
    c, d = ecfg["connector"], ecfg["dit"]
    connector = ConnectorShape(mllm_width, int(c["width"]), int(c["depth"]), int(c["heads"]))
    if ecfg["dit_init"]:
        editor = Editor(connector, dit_init=str(ecfg["dit_init"]))
        if editor.dit_shape.in_channels != codec.channels:
            raise ValueError(f"editor.dit_init takes {editor.dit_shape.in_channels} channels per token but the "
                             f"{codec.kind} codec gives {codec.channels}: use editor.codec=vae with that model's VAE")
        return editor
    shape = DiTShape(codec.channels, int(d["double_blocks"]), int(d["single_blocks"]), int(d["heads"]), int(d["head_dim"]),
                     int(d["cond_dim"]), int(d["pooled_dim"]))
    return Editor(connector, shape)


def settings_of(ecfg: dict[str, Any]) -> TrainSettings:
    return TrainSettings(**{k: type(getattr(TrainSettings, k))(v) for k, v in ecfg["train"].items()})


def derangement(n: int, seed: int) -> list[int]:
    """A permutation that moves every row (n >= 2), so no row keeps its own instruction."""
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    perm = [0] * n
    for k, row in enumerate(order):  # one cycle through a random order fixes no point
        perm[row] = order[(k + 1) % n]
    return perm


def train_and_edit(cfg: dict[str, Any], train_rows: list[Triplet], held: list[Triplet], held_images: torch.Tensor,
                   out: Path, log: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, list[np.ndarray]], dict[str, list]]:
    ecfg = cfg["editor"]
    size, settings = int(ecfg["size"]), settings_of(ecfg)
    start_t = float(ecfg["sample_start_t"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # TF32 matmuls: float32 training at tensor-core speed (bfloat16 autocast gave NaNs)
        torch.backends.cuda.matmul.allow_tf32 = True
    encoder = make_encoder(ecfg, cfg)
    codec = make_codec(ecfg, cfg)
    grid = codec.grid(size, size)  # a size the codec cannot tile fails here, before any training
    log(f"encoding {len(train_rows) + len(held)} rows with {encoder.model_ref} ({encoder.prefix_tokens} system-prefix tokens dropped)")
    instructions = [r.instruction for r in train_rows]
    hidden = encode_all(encoder, train_rows, instructions)
    held_hidden = encode_all(encoder, held, [r.instruction for r in held])
    runs = {"editor": hidden}
    guidance = float(ecfg["guidance"])
    # the sources read with an empty instruction: what instruction dropout trains on and guidance pushes away from
    null_train = encode_all(encoder, train_rows, [""] * len(train_rows)) if settings.drop_instruction > 0 else None
    null_held = encode_all(encoder, held, [""] * len(held)) if guidance != 1 else None
    if ecfg["control"] and len(train_rows) < 2:
        log("no shuffled-instruction control: it needs at least two training rows")
    elif ecfg["control"]:
        order = derangement(len(train_rows), settings.seed)
        runs[SHUFFLED] = encode_all(encoder, train_rows, [instructions[i] for i in order])
    encoder_info = encoder.describe()
    del encoder  # the MLLM is done: free its memory before training
    pool_src = to_tensor([r.source for r in train_rows])
    pool_tgt = to_tensor([r.target for r in train_rows])
    held_src = codec.encode(held_images.to(device))  # the held-out sources at the scoring size
    outputs, curves = {}, {}
    for name, conditioning in runs.items():
        editor = new_editor(ecfg, codec, conditioning[0].shape[1], settings.seed)
        log(f"training {name}: {sum(p.numel() for p in editor.parameters()) / 1e6:.2f}M parameters, {settings.steps} steps")
        data = TrainData(pool_src, pool_tgt, conditioning, size, null_train)
        curves[name] = train(editor, codec, data, settings, out / "checkpoints" / name, log, device)

        def edit(start: float, model: Editor = editor) -> list[np.ndarray]:
            tokens = sample(model, held_src, held_hidden, grid, int(ecfg["sample_steps"]), settings.seed, device=device,
                            start_t=start, guidance=guidance, null_hidden=null_held)
            return to_uint8(codec.decode(tokens.to(device), grid).cpu())

        outputs[name] = edit(start_t)
        if name == "editor" and start_t < 1:  # shown beside it: the same model drawing from pure noise
            outputs[FROM_NOISE] = edit(1.0)
    described = {
        "shapes": editor.shapes(), "dit": describe(editor.dit_shape), "dit_init": ecfg["dit_init"],
        "encoder": encoder_info, "codec": codec.describe(), "train": asdict(settings), "sample_steps": int(ecfg["sample_steps"]), "sample_start_t": start_t, "guidance": guidance,
        "final_loss": {name: float(np.mean([l for _, l in curve[-50:]])) for name, curve in curves.items()},
        "device": device, "checkpoints": str(out / "checkpoints"),
        "train_seconds": {name: checkpoint.read_meta(out / "checkpoints" / name / checkpoint.LATEST).get("train_seconds") for name in runs},
    }
    return described, outputs, curves
