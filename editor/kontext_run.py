"""`verify --editor flux-kontext`: FLUX.1 Kontext edits the held-out sources; nothing is trained."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from editor.data import Triplet


def kontext_source(cfg: dict[str, Any]) -> tuple[str, str | None]:
    """`editor.kontext.ref` when given, else what the profile gives the flux_kontext family (its
    tiny twin, built on first use, on the tiny profile). Verify-only, so a run's identity never
    depends on it."""
    from pipeline.core import models
    from stages.models.tiny import ensure_tiny

    if cfg["editor"]["kontext"]["ref"]:
        return str(cfg["editor"]["kontext"]["ref"]), None
    ensure_tiny(cfg, ["flux_kontext"])
    return models.resolve(cfg, "flux_kontext")


def kontext_predictions(cfg: dict[str, Any], held: list[Triplet], size: int, log: Callable[[str], None]) -> tuple[dict[str, Any], list[np.ndarray]]:
    from editor.kontext import kontext_edit, load_kontext

    kcfg = cfg["editor"]["kontext"]
    ref, revision = kontext_source(cfg)
    log(f"editing {len(held)} held-out rows with FLUX.1 Kontext from {ref}")
    pipe = load_kontext(str(ref), revision)
    edited = kontext_edit(pipe, [t.source for t in held], [t.instruction for t in held], size,
                          steps=int(kcfg["steps"]), guidance=float(kcfg["guidance"]),
                          seed=int(cfg["editor"]["train"]["seed"]), batch_size=int(kcfg["batch_size"]),
                          generate_px=kcfg["generate_px"])
    generated_at = kcfg["generate_px"] or "preferred Kontext resolution (about 1 MP)"
    return {"model": str(ref), "revision": revision, "generated_at": generated_at, **{k: kcfg[k] for k in ("steps", "guidance")}}, edited
