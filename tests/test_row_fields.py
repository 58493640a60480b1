"""Declared row fields: every stage says what it reads and writes, and in every recipe on every
profile each read has an earlier writer (or the engine's seed). Stages are only constructed
here: no weights load and nothing leaves the machine."""

from __future__ import annotations

import copy
from collections import defaultdict

import pytest

from pipeline.core import config, fields
from pipeline.core.fields import MissingField, RowView
from pipeline.core.rows import set_blob, update_work
from pipeline.core.stage import ModelStage, Stage
from pipeline.engine.stage_list import build_stage_list
from tasks import RECIPES, build_stages

PROFILES = ("cpu", "tiny", "gpu")
TINY_DIR = "/nonexistent/tiny-twins"  # resolved into paths only; building a stage opens nothing

_BASE: dict[str, dict] = {}


def _cfg(profile: str, task: str) -> dict:
    if profile not in _BASE:
        _BASE[profile] = config.load_config(profile, overrides=[{"models": {"tiny_dir": TINY_DIR}}])
    cfg = copy.deepcopy(_BASE[profile])
    cfg["run"]["tasks"] = [task]
    return cfg


def _chain(profile: str, task: str) -> list[Stage]:
    return build_stage_list(_cfg(profile, task))


def _all_chains():
    for profile in PROFILES:
        for task in RECIPES:
            yield profile, task, _chain(profile, task)


@pytest.mark.parametrize("task", sorted(RECIPES))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_read_has_an_earlier_writer(profile, task):
    assert fields.unmet_reads(_chain(profile, task)) == []


def test_every_stage_declares_what_it_reads_and_writes():
    """Declared on the stage's own class (or a stage class it extends), not left to Stage's
    empty default; every name is a known field, and only reads may be optional."""
    problems = []
    seen: set[type] = set()
    for _profile, _task, stages in _all_chains():
        for stage in stages:
            cls = type(stage)
            if cls in seen:
                continue
            seen.add(cls)
            for attr in ("reads", "writes"):
                owner = next(c for c in cls.__mro__ if attr in c.__dict__)
                if owner in (Stage, ModelStage):
                    problems.append(f"{cls.__name__} does not declare {attr}")
            problems += [f"{cls.__name__} reads unknown {n!r}" for n in stage.reads if not fields.is_known(n)]
            problems += [f"{cls.__name__} writes {n!r}" for n in stage.writes if n not in fields.FIELDS]
    assert problems == []
    assert len(seen) > 60  # every stage class of every recipe, gates, judge and the engine's own


def test_each_work_key_and_blob_names_the_stages_that_write_it():
    """`WRITTEN_BY` (what a missing field's error names) agrees with the stages' `writes`."""
    writers: dict[str, set[str]] = defaultdict(set)
    for _profile, _task, stages in _all_chains():
        for stage in stages:
            for name in stage.writes:
                writers[name].add(stage.name)
    scratch = [name for name in fields.FIELDS if name.startswith(("work.", "blob."))]
    assert {name: set(fields.WRITTEN_BY.get(name, ())) for name in scratch} == {name: writers[name] for name in scratch}


class _ReadsANonexistentKey(Stage):
    name = "planted"
    reads = ("source_image", "work.nonexistent")
    writes = ("target_image",)


def test_the_walk_names_a_stage_reading_a_field_nobody_writes():
    cfg = _cfg("cpu", "color_alteration")
    recipe = build_stages("color_alteration", cfg)
    problems = fields.unmet_reads(build_stage_list(cfg, recipes=[*recipe[:-1], _ReadsANonexistentKey(), recipe[-1]]))
    assert len(problems) == 1
    assert "planted" in problems[0] and "'work.nonexistent'" in problems[0]


def test_the_walk_catches_a_stage_moved_before_its_writer():
    """The issue's own case: on the model path, replace needs `selected` from replace_select."""
    cfg = _cfg("gpu", "subject_replace")
    recipe = [s for s in build_stages("subject_replace", cfg) if s.name != "replace_select"]
    problems = fields.unmet_reads(build_stage_list(cfg, recipes=recipe))
    assert problems and all("'work.selected'" in p for p in problems)
    assert problems[0].startswith("sam2_mask ")


def test_an_optional_read_needs_no_writer_and_a_setting_can_require_it():
    cpu = [s for s in build_stages("subject_replace", _cfg("cpu", "subject_replace")) if s.name == "replace_propose"][0]
    gpu = [s for s in build_stages("subject_replace", _cfg("gpu", "subject_replace")) if s.name == "replace_propose"][0]
    assert "work.replace_choice?" in cpu.reads
    assert "work.replace_choice" in gpu.reads
    seed = [n for n in cpu.reads if not n.endswith("?")]
    assert fields.unmet_reads([cpu], seed=seed) == []
    problems = fields.unmet_reads([gpu], seed=seed)
    assert len(problems) == 1 and "'work.replace_choice'" in problems[0]


def test_the_view_reads_fields_and_names_the_writer_of_a_missing_one():
    row = {"sample_id": "a", "mask": None}
    update_work(row, objects=[{"label": "cup", "bbox": [0, 0, 4, 4]}])
    set_blob(row, "mask:0", b"png")
    view = RowView(row)
    assert view.work.objects[0]["label"] == "cup"
    assert view["sample_id"] == "a" and view.get("mask") is None
    assert view.blob("mask:0") == b"png"
    with pytest.raises(MissingField, match="work.selected is not on the row: select_objects or .*replace_select"):
        view.work.selected
    with pytest.raises(MissingField, match=r"blob.mask:\* \(mask:1\) is not on the row: grabcut_mask or sam2_mask"):
        view.blob("mask:1")
    with pytest.raises(MissingField, match="mask is not on the row"):
        view["mask"]
    with pytest.raises(AttributeError, match="not a declared work key"):
        view.work.selectd
    with pytest.raises(KeyError, match="not a row column"):
        view["_work"]
    assert view.work.get("selected", []) == []


def test_blob_names_map_to_their_fields():
    assert fields.blob_field("mask:3") == "blob.mask:*"
    assert fields.blob_field("depth") == "blob.depth"
    assert fields.blob_field("skin") == "blob.skin" and fields.blob_field("skin:0") == "blob.skin:*"
    assert fields.blob_field("subject:source") == "blob.subject:source"
