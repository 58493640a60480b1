"""Instruction diversity (pipeline/postrun/diversity.py): the numbers on hand-made rows, the
manifest's record of a run folder, and the dataset card's section."""

import json

import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.postrun import dataset_card
from pipeline.postrun.diversity import Diversity, diversity_table, merge_into_manifest


def rows():
    make = lambda task, en, zh, source, status="ok": {  # noqa: E731
        "sample_id": en + task, "task": task, "status": status, "instruction_en": en, "instruction_zh": zh, "instruction_source": source,
    }
    return [
        make("color_alteration", "Make the cup red.", "把杯子变成红色。", "template"),
        make("color_alteration", "Make the cup red.", "把杯子变成红色。", "template"),
        make("color_alteration", "Paint the mug a deep red.", "把马克杯涂成深红色。", "mllm"),
        make("color_alteration", "Make the bowl blue.", "把碗变成蓝色。", "mllm", status="rejected"),
        make("style_transfer", "Redraw it as a watercolour.", "把它画成水彩画。", None),
    ]


def test_numbers_per_task():
    acc = Diversity()
    acc.add_rows(rows())
    color, style = acc.result()["color_alteration"], acc.result()["style_transfer"]
    # three ok rows: one MLLM, two identical templates; the rejected row is not counted
    assert color["rows"] == 3 and color["mllm_share"] == 0.333 and color["template_share"] == 0.667
    assert color["unique_ratio"] == 0.667
    # words: make the cup red x2, paint the mug a deep red -> 14 words, 8 distinct; 11 bigrams, 8 distinct
    assert color["distinct_1"] == round(8 / 14, 3) and color["distinct_2"] == round(8 / 11, 3)
    assert color["mean_words_en"] == round(14 / 3, 1) and color["mean_chars_zh"] == round((8 + 8 + 10) / 3, 1)
    assert style["template_share"] == 1.0  # a row from before the column counts as a template
    everything = Diversity(schema.CANDIDATE_STATUSES)
    everything.add_rows(rows())
    assert everything.result()["color_alteration"]["rows"] == 4
    table = diversity_table(acc.result())
    assert table.splitlines()[0].split()[:3] == ["task", "rows", "mllm"] and "color_alteration" in table


def test_the_manifest_gains_the_run_diversity(tmp_path):
    (tmp_path / "candidates").mkdir()
    full = [{**r, "provenance": "{}"} for r in rows()]
    pq.write_table(schema.to_output_table(full), tmp_path / "candidates" / "shard-00000.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"rows": {"ok": 4}}))
    merge_into_manifest(tmp_path, {"captioner": {"rows": "ok"}})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["rows"] == {"ok": 4} and manifest["instruction_diversity"]["over"] == ["ok"]
    assert manifest["instruction_diversity"]["tasks"]["color_alteration"]["rows"] == 3
    merge_into_manifest(tmp_path, {"captioner": {"rows": "candidates"}})
    assert json.loads((tmp_path / "manifest.json").read_text())["instruction_diversity"]["tasks"]["color_alteration"]["rows"] == 4


def test_the_dataset_card_shows_who_wrote_the_instructions():
    acc = dataset_card.new_summary()
    dataset_card.summarise_rows([{**r, "license": "CC0-1.0"} for r in rows()], acc)
    info = dataset_card.finish_summary(acc)
    assert info["diversity"]["color_alteration"]["rows"] == 4  # every exported row counts
    text = dataset_card.body({**info, "rows": 5, "run": "r", "format": "parquet", "thresholds": {}})
    assert "## Instructions" in text and "2 of 5 rows have instructions a multimodal model wrote" in text
    assert "| task | rows | mllm | template |" in text
