"""Fingerprints a run's rows and compares two runs: same sample_ids, statuses and image bytes.

    python bench/row_fingerprint.py RUN --out before.json
    python bench/row_fingerprint.py RUN --compare before.json

Used to show that a change which should not alter behaviour (a refactor) leaves every row as it
was. Reads the committed Parquet shards only; needs nothing but pyarrow."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

COLUMNS = ["sample_id", "task", "status", "reason", "target_image", "mask", "instruction_en", "instruction_zh", "edit"]


def _digest(image: dict | None) -> str | None:
    if not image or image.get("bytes") is None:
        return None
    return hashlib.sha256(image["bytes"]).hexdigest()


def fingerprint(run: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for folder in ("candidates", "errors"):
        for shard in sorted((run / folder).glob("shard-*.parquet")):
            table = pq.read_table(shard)
            names = [c for c in COLUMNS if c in table.column_names]
            for row in table.select(names).to_pylist():
                key = f"{row['sample_id']}|{row['task']}|{row['status']}|{row.get('reason') or ''}"
                rows[key] = {
                    "sample_id": row["sample_id"],
                    "task": row["task"],
                    "status": row["status"],
                    "reason": row.get("reason"),
                    "target_sha256": _digest(row.get("target_image")),
                    "mask_sha256": _digest(row.get("mask")),
                    "instruction_en": row.get("instruction_en"),
                    "instruction_zh": row.get("instruction_zh"),
                    "edit": row.get("edit"),
                }
    return dict(sorted(rows.items()))


def compare(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    problems = [f"only before: {k}" for k in before.keys() - after.keys()]
    problems += [f"only after: {k}" for k in after.keys() - before.keys()]
    for key in sorted(before.keys() & after.keys()):
        for field, value in before[key].items():
            if after[key].get(field) != value:
                problems.append(f"{key}: {field} differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, help="write the fingerprint here")
    parser.add_argument("--compare", type=Path, help="a fingerprint written earlier")
    args = parser.parse_args(argv)
    rows = fingerprint(args.run)
    statuses: dict[str, int] = {}
    for row in rows.values():
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    print(f"{len(rows)} rows: {statuses}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    if args.compare:
        problems = compare(json.loads(args.compare.read_text()), rows)
        for line in problems[:50]:
            print(line)
        print("identical" if not problems else f"{len(problems)} differences")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
