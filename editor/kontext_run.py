"""`verify --editor flux-kontext`: FLUX.1 Kontext edits the held-out sources; nothing is trained."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from editor.data import Triplet


def kontext_predictions(cfg: dict[str, Any], held: list[Triplet], size: int, log: Callable[[str], None]) -> tuple[dict[str, Any], list[np.ndarray]]:
    from editor.kontext import kontext_edit, load_kontext
    from pipeline import models

    kcfg = cfg["editor"]["kontext"]
    models.ensure_tiny(cfg, ["flux_kontext"])
    ref, revision = models.resolve(cfg, "flux_kontext")
    log(f"editing {len(held)} held-out rows with FLUX.1 Kontext from {ref}")
    pipe = load_kontext(str(ref), revision)
    edited = kontext_edit(pipe, [t.source for t in held], [t.instruction for t in held], size,
                          steps=int(kcfg["steps"]), guidance=float(kcfg["guidance"]),
                          seed=int(cfg["editor"]["train"]["seed"]), batch_size=int(kcfg["batch_size"]))
    return {"model": str(ref), "revision": revision, **{k: kcfg[k] for k in ("steps", "guidance")}}, edited
