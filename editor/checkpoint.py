"""Training state in safetensors: the editor's weights, the optimiser's moments, and (in the
file's metadata) the step, the loss history and the shapes needed to rebuild the model. Written
to a temporary name and renamed, so a crash mid-write leaves the previous checkpoint intact."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

LATEST = "latest.safetensors"


def save(folder: Path, editor: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any],
         ema: dict[str, torch.Tensor] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in editor.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().contiguous().cpu() for k, v in (ema or {}).items()})
    state = optimizer.state_dict()
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
    metadata = {"meta": json.dumps(meta), "param_groups": json.dumps(state["param_groups"])}
    path = folder / LATEST
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_meta(path: Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["meta"])


def load(path: Path, editor: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
         ema: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Restores weights (and the optimiser and the weights' moving average, when given) in place;
    returns the metadata."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        keys = list(handle.keys())
        model = {k[len("model."):]: handle.get_tensor(k) for k in keys if k.startswith("model.")}
        editor.load_state_dict(model)
        if ema is not None:
            for k in keys:
                if k.startswith("ema."):
                    ema[k[len("ema."):]].copy_(handle.get_tensor(k))
        if optimizer is not None:
            slots: dict[int, dict[str, torch.Tensor]] = {}
            for k in keys:
                if k.startswith("optim."):
                    _, index, name = k.split(".", 2)
                    slots.setdefault(int(index), {})[name] = handle.get_tensor(k)
            optimizer.load_state_dict({"state": slots, "param_groups": json.loads(metadata["param_groups"])})
    return json.loads(metadata["meta"])
