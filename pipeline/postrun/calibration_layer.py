"""The config layer `calibrate` writes: only the limits it moved (and select.min_o when it moved),
nested as `--config FILE` takes them, under a comment header saying from which verdicts and when
they were fitted. And the tables it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.core.run_dir import StoredFile, atomic_write
from pipeline.engine.manifest import text_table


def _set(layer: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = layer
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def layer_of(result: dict[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for info in result["tasks"].values():
        for limit in info["limits"]:
            if limit["fitted"] != limit["today"]:
                _set(layer, limit["key"], limit["fitted"])
    if result["min_o"]["fitted"] != result["min_o"]["today"]:
        _set(layer, "select.min_o", result["min_o"]["fitted"])
    return layer


def header(result: dict[str, Any]) -> str:
    v = result["verdicts"]
    lines = [
        "Fitted by `python -m pipeline calibrate` at " + result["fitted_at"],
        f"from {v['matched']} verdicts in {v['file']} (sha256 {v['sha256'][:16]})",
        f"on run {result['run']} (config {result['config_hash']}), target precision of keep {result['target_precision']:g}.",
        "Only the limits that moved are here; RUN/review/calibration.json has every limit and the agreement with people.",
    ]
    alone = {t: i["left_alone_because"] for t, i in result["tasks"].items() if not i["calibrated"]}
    lines += [f"Left as they are: {task} ({why})." for task, why in alone.items()]
    return "".join(f"# {line}\n" for line in lines)


def write_layer(result: dict[str, Any], path: Path | StoredFile) -> dict[str, Any]:
    layer = layer_of(result)
    body = yaml.safe_dump(layer, sort_keys=True) if layer else "{}\n"
    atomic_write(path if isinstance(path, StoredFile) else Path(path), (header(result) + body).encode())
    return layer


def _fmt(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _fmt_limit(value: float | int) -> str:
    return f"{value:.5g}"


def agreement_table(result: dict[str, Any]) -> str:
    lines: list[tuple[str, ...]] = [("task", "filter", "n", "kept", "accuracy", "kappa", "precision", "recall")]
    sections = [(t, i["agreement"]) for t, i in result["tasks"].items()] + [("overall", result["overall"]["agreement"])]
    for task, measures in sections:
        for name, m in measures.items():
            lines.append((task, name, str(m["n"]), str(m["kept"]), *(_fmt(m[k]) for k in ("accuracy", "kappa", "precision", "recall"))))
    return text_table(lines)


def limits_table(result: dict[str, Any]) -> str:
    """The limits that moved, and min O; the rest are in calibration.json."""
    lines: list[tuple[str, ...]] = [("limit", "gates", "today", "fitted")]
    unchanged = 0
    for info in result["tasks"].values():
        for lim in info["limits"]:
            if lim["fitted"] != lim["today"]:
                lines.append((lim["key"], ",".join(lim["gates"]), _fmt_limit(lim["today"]), _fmt_limit(lim["fitted"])))
            else:
                unchanged += 1
    lines.append(("select.min_o", "judge O", _fmt_limit(result["min_o"]["today"]), _fmt_limit(result["min_o"]["fitted"])))
    return text_table(lines) + f"\n{unchanged} other limits unchanged"
