"""Served models checked before work: a judge or captioner URL nobody listens on, or a server
that does not serve the model asked for, stops `run` with exit 2 before anything is planned."""

import socket

import pytest
from PIL import Image

from pipeline.cli.main import main
from pipeline.core.config import load_config
from pipeline.engine.servers import check_servers
from stages.models.server_probe import ServerUnusable, probe_model, shown_url
from tests.fake_judge_server import FakeJudgeServer


def _closed_port() -> int:
    with socket.socket() as s:  # bound then closed: nobody listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path, *flags):
    (tmp_path / "in").mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), (120, 80, 40)).save(tmp_path / "in" / "a.png")
    return main(["run", "--task", "color", "--input", str(tmp_path / "in"), "--out", str(tmp_path / "r"), "--no-progress", *flags])


def test_a_judge_url_nobody_listens_on_exits_2_before_the_plan(tmp_path, capsys):
    url = f"http://user:s3cret@127.0.0.1:{_closed_port()}/v1"
    assert _run(tmp_path, "--judge-url", url, "--judge-model", "fake-judge") == 2
    err = capsys.readouterr().err
    assert "judge server at http://127.0.0.1:" in err and "unreachable" in err and "s3cret" not in err
    assert not (tmp_path / "r" / "plan").exists()


def test_a_captioner_server_without_the_model_exits_2(tmp_path, capsys):
    with FakeJudgeServer(models=("other-model",)) as server:
        assert _run(tmp_path, "--captioner-url", server.base_url, "--captioner-model", "fake-captioner") == 2
        assert not server.requests  # no chat request went out
    err = capsys.readouterr().err
    assert f"captioner server at {server.base_url}/models does not serve model 'fake-captioner'" in err and "other-model" in err
    assert not (tmp_path / "r" / "plan").exists()


def test_a_good_server_passes_and_an_error_answer_does_not(monkeypatch):
    monkeypatch.setenv("PROBE_KEY", "sk-secret")
    with FakeJudgeServer() as server:
        cfg = load_config("cpu", overrides=[{"judge": {"backend": "openai", "url": server.base_url, "model": "fake-judge", "api_key_env": "PROBE_KEY"}}])
        check_servers(cfg)  # listed: the run may go on
        with pytest.raises(ServerUnusable, match="answered HTTP 404") as caught:
            probe_model(server.base_url + "/nowhere", "fake-judge", "PROBE_KEY")
    assert "sk-secret" not in str(caught.value)


def test_credentials_never_shown():
    assert shown_url("https://u:p@host:8443/v1/models?api_key=k") == "https://host:8443/v1/models"


@pytest.mark.parametrize("command", ["score", "verify"])
def test_score_and_verify_probe_the_judge_before_any_work(tmp_path, capsys, command):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    (tmp_path / "data").mkdir()
    argv = {"score": ["score", "--input", str(tmp_path / "data"), "--out", str(tmp_path / "out")],
            "verify": ["verify", str(tmp_path / "data"), "--out", str(tmp_path / "out")]}[command]
    assert main([*argv, "--judge-url", url, "--judge-model", "fake-judge"]) == 2
    err = capsys.readouterr().err
    assert f"judge server at {url}/models is unreachable" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing read, trained or written
