"""Where a model runs and at what precision, decided one way for every adapter: CUDA in bfloat16
when a GPU is present, else the CPU in float32 (bfloat16 on a CPU is slow and loses accuracy).
`PIPELINE_TORCH_DTYPE=bfloat16` (or float32) overrides the precision, so the CPU tests can run
every stage's twin the way the gpu profile runs it.

torch is imported inside the functions so that importing an adapter stays cheap."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

DTYPE_ENV = "PIPELINE_TORCH_DTYPE"
DTYPES = ("bfloat16", "float16", "float32")


def dtype_for(device: Any):
    """The precision models run in on `device`: PIPELINE_TORCH_DTYPE, else bfloat16 on CUDA and
    float32 on the CPU."""
    import torch

    wanted = os.environ.get(DTYPE_ENV)
    if wanted:
        if wanted not in DTYPES:
            raise ValueError(f"{DTYPE_ENV}={wanted!r}: use one of {', '.join(DTYPES)}")
        return getattr(torch, wanted)
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def device_and_dtype():
    """(torch.device, torch.dtype) for this machine."""
    import torch

    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return device, dtype_for(device)


def dtype_name(dtype: Any) -> str:
    """torch.bfloat16 -> "bfloat16", the way provenance records precision."""
    return str(dtype).removeprefix("torch.")


class LoadedModel(NamedTuple):
    model: Any
    processor: Any
    device: Any
    dtype: Any


def load_model(model_class: Any, processor_class: Any, model_ref: str, revision: str | None = None) -> LoadedModel:
    """A transformers model and its processor through the library's own `from_pretrained`
    (safetensors only), the model in eval mode on this machine's device and precision."""
    device, dtype = device_and_dtype()
    processor = processor_class.from_pretrained(model_ref, revision=revision)
    model = model_class.from_pretrained(model_ref, revision=revision, use_safetensors=True, dtype=dtype)
    return LoadedModel(model.to(device).eval(), processor, device, dtype)


def model_info(model_ref: str, revision: str | None, model: Any, dtype: Any) -> dict[str, Any]:
    """What ran, for provenance: without a pinned revision, the commit the hub resolved."""
    revision = revision or getattr(model.config, "_commit_hash", None)
    return {"model": model_ref, "revision": revision, "dtype": dtype_name(dtype)}
