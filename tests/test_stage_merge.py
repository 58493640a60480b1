from pipeline.core.stage import Stage
from pipeline.engine.stage_merge import merge_task_stages


def _stage(name, task, key=None):
    stage = Stage()
    stage.name, stage.tasks = name, (task,)
    if key:
        stage.share_key = key
    return stage


def _names(stages):
    return [(s.name, s.tasks) for s in stages]


def test_shared_models_become_one_stage_and_each_task_keeps_its_order():
    color = [_stage("phrases", "c"), _stage("florence", "c", "F"), _stage("select", "c"), _stage("sam", "c", "S"), _stage("depth", "c", "Z"), _stage("recolour", "c")]
    remove = [_stage("phrases", "r"), _stage("florence", "r", "F"), _stage("select", "r"), _stage("sam", "r", "S"), _stage("fill", "r", "X")]
    merged = merge_task_stages([color, remove])
    names = _names(merged)
    assert names.count(("florence", ("c", "r"))) == 1 and names.count(("sam", ("c", "r"))) == 1
    for task_stages in (color, remove):
        order = [next(i for i, s in enumerate(merged) if s.name == t.name and t.tasks[0] in s.tasks) for t in task_stages]
        assert order == sorted(order)
    assert color[1].tasks == ("c",)  # the recipes' own stages are not changed


def test_same_model_with_other_settings_is_not_shared():
    a = [_stage("sam", "a", ("sam2", 0)), _stage("x", "a")]
    b = [_stage("sam", "b", ("sam2", 8)), _stage("y", "b")]
    assert len([s for s in merge_task_stages([a, b]) if s.name == "sam"]) == 2


def test_models_in_opposite_orders_stay_separate_rather_than_break_an_order():
    a = [_stage("m1", "a", "M1"), _stage("m2", "a", "M2")]
    b = [_stage("m2", "b", "M2"), _stage("m1", "b", "M1")]
    merged = merge_task_stages([a, b])
    for task in ("a", "b"):
        seq = [s.name for s in merged if task in s.tasks]
        assert seq == [s.name for s in (a if task == "a" else b)]


def test_a_shared_stage_is_built_by_the_first_stages_merged_with():
    class Pair(Stage):
        def merged_with(self, other):
            shared = super().merged_with(other)
            shared.parts = (*self.parts, *other.parts)
            return shared

    a, b = Pair(), Pair()
    a.name = b.name = "pair"
    a.tasks, a.parts, a.share_key = ("a",), ("x",), "K"
    b.tasks, b.parts, b.share_key = ("b",), ("y",), "K"
    (merged,) = merge_task_stages([[a], [b]])
    assert merged.tasks == ("a", "b") and merged.parts == ("x", "y")
    assert a.tasks == ("a",) and a.parts == ("x",)  # neither recipe stage is changed
