"""The verdicts file: the contract checked line by line, the latest line per sample_id wins, and
an import that is all or nothing."""

import json

import pytest

from pipeline.postrun.verdicts import (
    VerdictError,
    append_verdict,
    import_verdicts,
    load_verdicts,
    parse_verdict,
    verdicts_file,
)
from tests.review_runs import RUN_ID, make_run, verdict

OK, REJ = "color-ok-00", "color-rejected-04"
TASK = "color_alteration"


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", tasks=(TASK, "style_transfer"))


def _write(path, lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_latest_line_per_sample_wins(run):
    for line in (verdict(OK, TASK), verdict(REJ, TASK, verdict="reject"), verdict(OK, TASK, verdict="reject", score=None, note="halo")):
        append_verdict(run, parse_verdict(line, RUN_ID, {OK: TASK, REJ: TASK}))
    found = load_verdicts(run)
    assert set(found) == {OK, REJ}
    assert (found[OK].verdict, found[OK].score, found[OK].note, found[OK].keep) == ("reject", None, "halo", False)
    assert found[REJ].reviewer == "ann" and found[REJ].at == "2026-12-04T10:00:00.000Z"


def test_missing_and_empty_files(run):
    with pytest.raises(VerdictError, match="no verdicts"):
        load_verdicts(run)
    verdicts_file(run).parent.mkdir()
    verdicts_file(run).write_text("")
    assert load_verdicts(run) == {}


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", "line 2: not JSON"),
        (verdict("nope-00", TASK), "line 2: unknown sample_id nope-00"),
        (verdict(REJ, TASK, run="cfg-other"), "line 2: sample_id color-rejected-04: a verdict of another run"),
        (verdict(REJ, TASK, verdict="maybe"), "line 2: .*verdict must be 'keep' or 'reject'"),
        (verdict(REJ, TASK, score=6), "line 2: .*score must be an integer 1-5"),
        (verdict(REJ, TASK, score=True), "line 2: .*score must be an integer 1-5"),
        (verdict(REJ, TASK, score=2.5), "line 2: .*score must be an integer 1-5"),
        (verdict(REJ, "style_transfer"), "line 2: .*the row's task is 'color_alteration'"),
        (verdict(REJ, TASK, at="2026-12-04T10:00:00"), "line 2: .*ISO-8601 UTC"),
        (verdict(REJ, TASK, at="2026-12-04T10:00:00+02:00"), "line 2: .*ISO-8601 UTC"),
        (verdict(REJ, TASK, note=None), "line 2: .*note must be a string"),
        ({k: v for k, v in verdict(REJ, TASK).items() if k != "reviewer"}, "line 2: missing field.s. reviewer"),
        ({**verdict(REJ, TASK), "mood": "good"}, "line 2: unknown field.s. mood"),
        ("[1, 2]", "line 2: a verdict is a JSON object"),
        (verdict(OK, TASK, verdict="reject"), "line 2: sample_id color-ok-00 disagrees with line 1"),
    ],
)
def test_a_bad_import_names_the_line_and_changes_nothing(run, tmp_path, bad, message):
    append_verdict(run, parse_verdict(verdict(OK, TASK, note="first"), RUN_ID, {OK: TASK}))
    before = verdicts_file(run).read_bytes()
    source = _write(tmp_path / "in.jsonl", [verdict(OK, TASK), bad, verdict(REJ, TASK, verdict="reject")])
    with pytest.raises(VerdictError, match=message):
        import_verdicts(run, source)
    assert verdicts_file(run).read_bytes() == before


def test_import_merges_only_what_changed(run, tmp_path):
    append_verdict(run, parse_verdict(verdict(OK, TASK), RUN_ID, {OK: TASK}))
    other = "style-ok-08"
    lines = [verdict(OK, TASK, reviewer="bob", at="2026-12-05T09:00:00Z"),  # same judgement: not written again
             verdict(REJ, TASK, verdict="reject", score=1), verdict(REJ, TASK, verdict="reject", score=1),  # agreeing repeat
             "", verdict(other, "style_transfer", score=None)]
    result = import_verdicts(run, _write(tmp_path / "in.jsonl", lines))
    assert (result.new, result.changed, result.unchanged) == (2, 0, 1)
    assert len(verdicts_file(run).read_text().splitlines()) == 3
    result = import_verdicts(run, _write(tmp_path / "again.jsonl", [verdict(OK, TASK, verdict="reject", note="seam")]))
    assert (result.new, result.changed, result.unchanged) == (0, 1, 0)
    found = load_verdicts(run)
    assert found[OK].note == "seam" and found[REJ].score == 1 and found[other].task == "style_transfer"
    assert import_verdicts(run, tmp_path / "again.jsonl").unchanged == 1
    assert len(verdicts_file(run).read_text().splitlines()) == 4


def test_a_broken_verdicts_file_is_named_on_load(run):
    verdicts_file(run).parent.mkdir()
    _write(verdicts_file(run), [verdict(OK, TASK), verdict(OK, TASK, verdict="reject"), '{"sample_id": "x"'])
    with pytest.raises(VerdictError, match=r"verdicts.jsonl line 3: not JSON"):
        load_verdicts(run)


def test_a_folder_without_manifest_is_refused(tmp_path):
    (tmp_path / "candidates").mkdir()
    with pytest.raises(VerdictError, match="is not a finished run folder .no manifest.json."):
        import_verdicts(tmp_path, tmp_path / "x.jsonl")
