"""The README.md of an export: a Hugging Face dataset card whose YAML header says where the data
files are and what their features are, and whose body says what is in it and under which terms."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from pipeline.core import schema
from pipeline.postrun.diversity import HEADER as DIVERSITY_HEADER
from pipeline.postrun.diversity import Diversity
from pipeline.postrun.diversity import table_rows as diversity_rows

# Terms of the checkpoints the registry names; anything else is named with a request to check.
MODEL_TERMS = {
    "black-forest-labs/FLUX.1-Fill-dev": "FLUX.1 [dev] Non-Commercial License",
    "stabilityai/stable-diffusion-3.5-large": "Stability AI Community License",
    "stabilityai/stable-diffusion-3.5-large-controlnet-depth": "Stability AI Community License",
    "stabilityai/stable-diffusion-3.5-large-controlnet-canny": "Stability AI Community License",
    "Qwen/Qwen2.5-VL-7B-Instruct": "Apache-2.0",
    "Qwen/Qwen2.5-VL-72B-Instruct": "Qwen License",
    "florence-community/Florence-2-large": "MIT",
    "microsoft/Florence-2-large": "MIT",
    "facebook/sam2.1-hiera-large": "Apache-2.0",
    "google/siglip2-so400m-patch14-384": "Apache-2.0",
    "Intel/zoedepth-nyu-kitti": "MIT",
}
UNKNOWN_TERMS = "not known to the pipeline: read the checkpoint's own licence before using this data"

# Hugging Face licence identifiers for the spellings sources commonly use; anything else (public
# domain included, which is no licence text) is "other", with the exact wording in the card's body.
LICENSE_IDS = {
    "cc0": "cc0-1.0", "cc0-1.0": "cc0-1.0",
    "cc-by-4.0": "cc-by-4.0", "cc-by-2.0": "cc-by-2.0", "cc-by-sa-4.0": "cc-by-sa-4.0", "cc-by-nc-4.0": "cc-by-nc-4.0",
    "mit": "mit", "apache-2.0": "apache-2.0", "bsd-3-clause": "bsd-3-clause", "bsd": "bsd-3-clause",
}


def license_id(text: str) -> str:
    key = "-".join(text.strip().lower().replace("_", " ").split())
    return LICENSE_IDS.get(key, "other")


def parquet_features() -> list[dict[str, str]]:
    """The row schema in the card's `dataset_info.features` form."""
    out = []
    for field in schema.ROW_FIELDS:
        if field.name in schema.IMAGE_COLUMNS:
            dtype = "image"
        elif pa.types.is_boolean(field.type):
            dtype = "bool"
        elif pa.types.is_integer(field.type):
            dtype = str(field.type)
        else:
            dtype = "string"
        out.append({"name": field.name, "dtype": dtype})
    return out


def size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "1M<n<10M"


def header(info: dict[str, Any]) -> dict[str, Any]:
    ids = sorted({license_id(name) for name in info["licenses"]}) or ["other"]
    meta: dict[str, Any] = {
        "license": ids,
        "task_categories": ["image-to-image"],
        "language": ["en", "zh"],
        "size_categories": [size_category(info["rows"])],
        "tags": ["image-editing", "instruction-based-editing", "synthetic"],
        "pretty_name": info.get("name", "Image editing triplets"),
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": info["data_files"]}]}],
    }
    if info["format"] == "parquet":
        meta["dataset_info"] = {
            "features": info.get("features") or parquet_features(),
            "splits": [{"name": "train", "num_bytes": info["data_bytes"], "num_examples": info["rows"]}],
            "dataset_size": info["data_bytes"],
        }
    return meta


def _table(head: tuple[str, ...], lines: list[tuple[Any, ...]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def body(info: dict[str, Any]) -> str:
    parts = [f"# {info.get('name', 'Image editing triplets')}", ""]
    what = info.get("contents") or (
        f"{info['rows']} instruction-based image-editing triplets (source image, edited target, mask, English and "
        "Chinese instructions)"
    )
    parts += [f"{what}, exported from the pipeline run `{info['run']}` (config {info.get('config_hash') or 'unknown'}).", ""]
    if info["format"] == "parquet":
        parts += ["Load it with `datasets.load_dataset(\"parquet\", data_files=...)`: the image columns decode as images.", ""]
    else:
        parts += ["WebDataset tar shards: per sample `<id>.source.png`, `<id>.target.png`, `<id>.mask.png` (where the edit "
                  "is local), `<id>.depth.png` (where depth was estimated) and `<id>.json` with every other column.", ""]
    parts += ["## Tasks", "", _table(("task", "rows"), sorted(info["task_counts"].items())), ""]
    parts += info.get("extra_sections") or []
    parts += ["## Licences of the source images", ""]
    parts += [_table(("licence", "rows"), sorted(info["licenses"].items())) if info["licenses"] else "No row states a licence.", ""]
    parts += ["Each row's `license` column holds its source's licence; `source_uri` says where the source came from.", ""]
    parts += ["## Generators and their terms", ""]
    if info["generators"]:
        lines = [(ref, ", ".join(g["revisions"]) or "unpinned", ", ".join(g["stages"]), MODEL_TERMS.get(ref, UNKNOWN_TERMS))
                 for ref, g in sorted(info["generators"].items())]
        parts += ["The edited images and instructions were made with these models; their terms may bind uses of "
                  "the outputs.", "", _table(("model", "revision", "stages", "terms"), lines), ""]
    else:
        parts += ["No model weights took part: the rows were made by classical methods.", ""]
    if info.get("backends"):
        parts += ["Classical backends used (no weights): " + ", ".join(sorted(info["backends"])) + ".", ""]
    if info.get("diversity"):
        parts += ["## Instructions", "", _instructions_text(info["diversity"]), "",
                  _table(DIVERSITY_HEADER, diversity_rows(info["diversity"])), ""]
    parts += ["## Judge", "", _judge_text(info["judge"]), ""]
    parts += ["## Selection and thresholds", "", _table(("setting", "value"), sorted((k, v) for k, v in info["thresholds"].items())), ""]
    parts += ["`export_manifest.json` lists every file with its SHA-256.", ""]
    return "\n".join(parts)


def _instructions_text(by_task: dict[str, dict[str, Any]]) -> str:
    rows = sum(d["rows"] for d in by_task.values())
    mllm = sum(round(d["rows"] * (d["mllm_share"] or 0)) for d in by_task.values())
    return (f"{mllm} of {rows} rows have instructions a multimodal model wrote after looking at the source, the target "
            "and the edit (`instruction_source` = mllm; every register is in `instructions`, captions in "
            "`source_caption` and `target_caption`); the others keep a template instruction. Per task: the share of "
            "each, the share of distinct English instructions, distinct-1 and distinct-2 over English words, and "
            "the mean length (English in words, Chinese in characters).")


def _judge_text(judge: dict[str, Any]) -> str:
    states = ", ".join(f"{state}: {n}" for state, n in sorted(judge["states"].items()))
    if not judge["models"]:
        return (f"No MLLM judge scored these rows ({states}): each task was ranked by its gate score, the smallest "
                "normalised margin by which a row passed its gates.")
    models = "; ".join(sorted(judge["models"]))
    hashes = ", ".join(sorted(judge["prompt_hashes"])) or "not recorded"
    return (f"VIEScore (SC = min of editing success and over-editing, PQ = min of naturalness and artifacts, "
            f"O = sqrt(SC x PQ), 0-10) by {models}; prompt hashes {hashes}; judge states {states}.")


def summarise_rows(rows: list[dict[str, Any]], acc: dict[str, Any]) -> None:
    """Add what the card reports about these rows to `acc` (built by `new_summary`)."""
    for row in rows:
        acc["task_counts"][row["task"]] += 1
        acc["licenses"][row.get("license") or "unknown"] += 1  # an unstated licence is reported, never hidden
        prov = schema.loads(row.get("provenance"))
        for stage, record in (prov.get("stages") or {}).items():
            for key in ("model", "controlnet"):
                ref = record.get(key)
                if ref:
                    gen = acc["generators"].setdefault(ref, {"stages": set(), "revisions": set()})
                    gen["stages"].add(stage)
                    revision = record.get("revision") if key == "model" else record.get("controlnet_revision")
                    if revision:
                        gen["revisions"].add(str(revision))
            if record.get("backend"):
                acc["backends"].add(str(record["backend"]))
        acc["diversity"].add_rows([row])
        judge = schema.loads(row.get("judge"))
        acc["judge"]["states"][judge.get("state") or "none"] += 1
        if judge.get("state") == "scored" and judge.get("model"):
            revision = judge.get("revision")
            adapter = f" + LoRA {judge['adapter']}" if judge.get("adapter") else ""  # a learned judge (EditScore)
            acc["judge"]["models"].add(judge["model"] + (f" @ {revision}" if revision else "") + adapter)
            if judge.get("prompt_hash"):
                acc["judge"]["prompt_hashes"].add(str(judge["prompt_hash"]))


def new_summary() -> dict[str, Any]:
    return {
        "task_counts": Counter(), "licenses": Counter(), "generators": {}, "backends": set(),
        "judge": {"states": Counter(), "models": set(), "prompt_hashes": set()},
        "diversity": Diversity(schema.CANDIDATE_STATUSES),  # every exported row
    }


def finish_summary(acc: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_counts": dict(acc["task_counts"]),
        "licenses": dict(acc["licenses"]),
        "generators": {ref: {"stages": sorted(g["stages"]), "revisions": sorted(g["revisions"])} for ref, g in acc["generators"].items()},
        "backends": sorted(acc["backends"]),
        "judge": {"states": dict(acc["judge"]["states"]), "models": sorted(acc["judge"]["models"]),
                  "prompt_hashes": sorted(acc["judge"]["prompt_hashes"])},
        "diversity": acc["diversity"].result(),
    }


def render_card(info: dict[str, Any]) -> str:
    """`info`: name, run, config_hash, format, data_files, data_bytes, rows, thresholds, plus the
    keys of `finish_summary`; optionally `features` (another table's), `contents` (what a row is)
    and `extra_sections` (Markdown lines after the task table)."""
    return "---\n" + yaml.safe_dump(header(info), sort_keys=False, allow_unicode=True) + "---\n\n" + body(info)


def write_card(to_dir: Path, info: dict[str, Any]) -> Path:
    path = Path(to_dir) / "README.md"
    path.write_text(render_card(info))
    return path
