"""The circuit breaker: a served model that fails request after request is no longer called, and
the run stops with exit 1 and one clear line instead of marking every row unscored."""

import json

import pytest

from filters.judge.backends import JudgeCall, OpenAIJudgeBackend
from stages.models.circuit import CircuitBreaker, CircuitOpen
from stages.models.openai_client import ChatRequest, OpenAIChatClient
from tests.fake_openai_server import FakeOpenAIServer


def test_a_server_that_fails_every_call_after_the_third_is_not_called_again():
    with FakeOpenAIServer(script={"x": ["good", "good", "good", "500"]}) as server:
        client = OpenAIChatClient(server.base_url, "fake-vlm", max_retries=0, max_workers=1, breaker=CircuitBreaker(2, "judge"))
        results = [client.complete(ChatRequest("x")) for _ in range(8)]
        assert [r.ok for r in results] == [True] * 3 + [False] * 5
        assert len(server.requests) == 5  # three good, two failed; then nothing more went out
        assert results[-1].reason == "circuit open: not sent"
        with pytest.raises(CircuitOpen, match="failed 2 requests in a row"):
            OpenAIJudgeBackend(client).ask([JudgeCall((), "x")])


def test_a_success_closes_the_count_and_zero_never_opens():
    breaker = CircuitBreaker(2)
    for ok in (False, True, False):
        breaker.record(ok)
    assert not breaker.open
    never = CircuitBreaker(0)
    for _ in range(50):
        never.record(False)
    never.check()


def test_a_run_whose_judge_fails_every_call_exits_1_with_one_line(ray_address, tmp_path, capsys):
    from pipeline.cli.main import main
    from tests.fake_judge_server import FakeJudgeServer

    with FakeJudgeServer(default="500") as server:
        code = main([
            "run", "--task", "color", "--limit", "1", "--out", str(tmp_path / "r"), "--no-progress",
            "--judge-url", server.base_url, "--judge-model", "fake-judge", "--set", "decode.working_size=128",
            "--set", "judge.retries=0", "--set", "judge.max_consecutive_failures=1",
        ])
    err = capsys.readouterr().err
    assert code == 1
    line = next(x for x in err.splitlines() if x.startswith("run failed:"))
    assert "circuit open: the judge server at http://127.0.0.1:" in line and "committed shards are kept" in line
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["complete"] is False
