"""Where a model runs and at what precision, decided one way for every adapter: CUDA in bfloat16
when a GPU is present, else the CPU in float32 (bfloat16 on a CPU is slow and loses accuracy).

torch is imported inside the functions so that importing an adapter stays cheap."""

from __future__ import annotations

from typing import Any, NamedTuple


def device_and_dtype():
    """(torch.device, torch.dtype) for this machine."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


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
