"""`score`: the gates and the judge over an existing triplet dataset, this project's rows or
another project's through a column map. No selection; dedup only when asked (by `select`)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from filters.common_gates import CommonGatesStage
from filters.gate_stage import GateStage
from filters.hue import rgb_hue
from filters.judge.stage import make_judge_stage
from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.run_dir import atomic_write
from pipeline.core.task_names import ALIASES, TASK_IDS
from pipeline.engine.stage_runner import run_stage
from stages.vocabulary import COLORS
from tasks import task_gate

DEFAULT_COLUMNS = {"src": "source_image", "tgt": "target_image", "instruction": "instruction_en", "mask": "mask", "task": "task"}


class ScoreError(ValueError):
    pass


def parse_columns(spec: str | None) -> dict[str, str]:
    columns = dict(DEFAULT_COLUMNS)
    for part in filter(None, (spec or "").split(",")):
        key, _, name = part.partition("=")
        if key.strip() not in DEFAULT_COLUMNS or not name.strip():
            raise ScoreError(f"--columns takes {','.join(k + '=NAME' for k in DEFAULT_COLUMNS)}; got {part!r}")
        columns[key.strip()] = name.strip()
    return columns


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.parquet"))
    elif path.suffix == ".parquet":
        files = [path]
    else:
        raise ScoreError(f"--input must be a Parquet file or a folder of them: {path}")
    if not files:
        raise ScoreError(f"no Parquet files under {path}")
    return files


def _image(value: Any) -> dict | None:
    """Any image cell (struct with bytes, raw bytes) as this project's image struct."""
    if value is None:
        return None
    data = value.get("bytes") if isinstance(value, dict) else value
    return schema.image_value(data) if data else None


def _edit_from_instruction(task: str, instruction: str) -> dict[str, Any]:
    """What a task check needs and a foreign row does not carry, read from its instruction."""
    if task == "color_alteration":
        words = set(re.findall(r"[a-z]+", instruction.lower()))
        for name, (english, _zh, rgb) in COLORS.items():
            if english in words:
                return {"type": task, "color": name, "target_rgb": list(rgb), "target_hue": rgb_hue(rgb), "from": "instruction"}
    if task == "text_modification":
        quoted = re.findall(r"[\"“]([^\"”]+)[\"”]", instruction)
        if len(quoted) >= 2:
            return {"type": task, "old_text": quoted[0], "new_text": quoted[-1], "from": "instruction"}
    return {}


def _task_of(value: Any, default: str | None) -> str:
    task = value or default
    task = ALIASES.get(task, task)
    if task not in TASK_IDS:
        raise ScoreError(f"row without a known task ({value!r}); give the column with --columns task=NAME or --task")
    return task


def input_rows(files: list[Path], columns: dict[str, str], default_task: str | None, batch_rows: int) -> Iterator[list[dict]]:
    for path in files:
        pfile = pq.ParquetFile(path)
        names = set(pfile.schema_arrow.names)
        for needed in ("src", "tgt", "instruction"):
            if columns[needed] not in names:
                raise ScoreError(f"{path}: no column {columns[needed]!r} for {needed} (columns: {', '.join(sorted(names))})")
        for batch in pfile.iter_batches(batch_size=batch_rows):
            rows = []
            for raw in batch.to_pylist():
                task = _task_of(raw.get(columns["task"]), default_task)
                source, target = _image(raw.get(columns["src"])), _image(raw.get(columns["tgt"]))
                instruction = raw.get(columns["instruction"]) or ""
                edit = schema.loads(raw["edit"]) if isinstance(raw.get("edit"), str) and raw.get("edit") else _edit_from_instruction(task, instruction)
                digest = hashlib.sha256((source or {}).get("bytes") or b"").hexdigest()
                rows.append(
                    {
                        **{k: raw.get(k) for k in schema.ROW_COLUMNS if k in raw and k not in schema.IMAGE_COLUMNS},
                        "sample_id": raw.get("sample_id") or schema.sample_id(digest, hashlib.sha256(instruction.encode()).hexdigest(), task, 0),
                        "task": task,
                        "source_image": source,
                        "target_image": target,
                        "mask": _image(raw.get(columns["mask"])) if columns["mask"] in names else None,
                        "instruction_en": instruction,
                        "edit": schema.dumps(edit),
                        "source_sha256": raw.get("source_sha256") or digest,
                        "status": schema.PENDING,
                        "reason": None,
                        "scores": None,
                        "judge": None,
                        "_unit": f"score:{raw.get('sample_id') or digest}",
                        "_unit_rows": 1,
                    }
                )
            yield rows


def _task_gates(task: str, cfg: dict[str, Any]) -> list[GateStage]:
    return [task_gate(task, cfg)]


def _run_task_gates(rows: list[dict], gates_by_task: dict[str, list[GateStage]]) -> None:
    """Each row's own task check, where the row carries what it needs; otherwise a note says
    which field was missing and the common gates decide alone."""
    for i, row in enumerate(rows):
        if not row["source_image"] or not row["target_image"]:
            row_status.move(row, schema.ERROR, "score: the row lacks its source or target image")
            continue
        for gate in gates_by_task[row["task"]]:
            try:
                row = gate.process_row(dict(row))
            except (KeyError, TypeError) as exc:
                scores = schema.loads(row.get("scores"))
                scores.setdefault("task_check", []).append(f"{gate.name} not run: the row lacks what it reads (mask or edit field; {type(exc).__name__}: {exc})")
                row["scores"] = schema.dumps(scores)
        if row["status"] == schema.PENDING:
            row_status.move(row, schema.OK, row["reason"])  # no check failed; the common gates may still reject it
        rows[i] = row


def score_dataset(input_path: Path, out: Path, cfg: dict[str, Any], columns: dict[str, str], default_task: str | None = None, batch_rows: int = 64) -> dict[str, Any]:
    files = _files(input_path)
    common = CommonGatesStage.from_config(cfg)
    judge = make_judge_stage(cfg)
    judge.setup()
    gates_by_task = {task: _task_gates(task, cfg) for task in TASK_IDS}
    counts: dict[str, int] = {}
    written = []
    (out / "scored").mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(input_rows(files, columns, default_task, batch_rows)):
        _run_task_gates(rows, gates_by_task)
        rows = run_stage(judge, run_stage(common, rows))
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        sink = pa.BufferOutputStream()
        pq.write_table(schema.to_output_table(rows), sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        path = out / "scored" / f"part-{part:05d}.parquet"
        atomic_write(path, data)
        written.append({"path": str(path.relative_to(out)), "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()})
    summary = {"input": str(input_path), "columns": columns, "rows": counts, "files": written}
    atomic_write(out / "score_manifest.json", json.dumps(summary, indent=1).encode())
    return summary
