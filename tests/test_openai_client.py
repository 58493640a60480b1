import base64
import io
import json
import logging
import pickle
import time

import numpy as np
import pytest
from PIL import Image

from pipeline.core import schema
from pipeline.core.image_io import encode_png
from pipeline.core.rows import provenance, work
from stages.models.mllm_json import parse_reply
from stages.models.openai_client import (
    EMPTY,
    HTTP_ERROR,
    REFUSED,
    TIMEOUT,
    ChatRequest,
    OpenAIChatClient,
    read_choice,
)
from stages.models.qwen2_5_vl import CHOICE_SCHEMA, QwenChooseEditStage
from tests.fake_openai_server import GOOD_JSON, FakeOpenAIServer

KEY_ENV = "FAKE_SERVER_TEST_KEY"
SECRET = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def _client(server, **overrides):
    settings = dict(api_key_env=KEY_ENV, timeout_s=0.5, max_retries=2, backoff_s=0.01, max_backoff_s=1.0, max_workers=4)
    settings.update(overrides)
    return OpenAIChatClient(server.base_url, "fake-vlm", **settings)


def _image(height=64, width=80, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def test_good_reply_sends_the_image_as_a_png_data_url_before_the_text():
    rgb = _image()
    with FakeOpenAIServer() as server:
        result = _client(server).complete(ChatRequest("good", images=(rgb,), max_tokens=32))
    assert result.ok and result.text == GOOD_JSON and result.attempts == 1
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert sent["body"]["model"] == "fake-vlm" and sent["body"]["max_tokens"] == 32
    image_part, text_part = sent["body"]["messages"][-1]["content"]
    assert text_part == {"type": "text", "text": "good"}
    prefix, encoded = image_part["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/png;base64"
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))
    assert np.array_equal(decoded, rgb)  # lossless: the server sees the pixels the pipeline has


def test_png_bytes_are_sent_as_they_are():
    png = encode_png(_image(seed=3))
    with FakeOpenAIServer() as server:
        _client(server).complete(ChatRequest("good", images=(png,)))
    url = server.requests[0]["body"]["messages"][-1]["content"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == png


def test_malformed_and_fenced_json_reach_the_caller_as_text_and_the_parser_judges_them():
    with FakeOpenAIServer() as server:
        malformed, fenced = _client(server).complete_many([ChatRequest("malformed"), ChatRequest("fenced")])
    assert malformed.ok and fenced.ok  # the transport succeeded either way
    assert not parse_reply(malformed.text, CHOICE_SCHEMA).ok
    assert parse_reply(fenced.text, CHOICE_SCHEMA).value == json.loads(GOOD_JSON)


@pytest.mark.parametrize("behaviour", ["refusal", "refusal_field"])
def test_refusals_are_failures_not_answers(behaviour):
    with FakeOpenAIServer() as server:
        result = _client(server).complete(ChatRequest(behaviour))
    assert not result.ok and result.failure == REFUSED and result.text is None
    assert result.attempts == 1  # a refusal is an answer from the server: asking again the same way is pointless


def test_empty_content_is_a_failure():
    with FakeOpenAIServer() as server:
        result = _client(server).complete(ChatRequest("empty"))
    assert (result.ok, result.failure, result.text) == (False, EMPTY, None)


def test_a_slow_server_times_out_and_is_retried_then_given_up():
    with FakeOpenAIServer(slow_s=1.5) as server:
        start = time.perf_counter()
        result = _client(server, timeout_s=0.2, max_retries=1).complete(ChatRequest("slow"))
        elapsed = time.perf_counter() - start
    assert result.failure == TIMEOUT and result.attempts == 2
    assert len(server.requests) == 2
    assert elapsed < 1.2  # gave up on each attempt at the timeout, not when the server answered


def test_429_waits_for_retry_after_then_succeeds():
    with FakeOpenAIServer(script={"busy": ["429", "good"]}, retry_after="0.3") as server:
        start = time.perf_counter()
        result = _client(server, backoff_s=0.01).complete(ChatRequest("busy"))
        elapsed = time.perf_counter() - start
    assert result.ok and result.text == GOOD_JSON and result.attempts == 2
    assert elapsed >= 0.3  # the server's wait, not the client's 0.01 s backoff


def test_500_then_success_is_retried():
    with FakeOpenAIServer(script={"flaky": ["500", "good"]}) as server:
        result = _client(server).complete(ChatRequest("flaky"))
    assert result.ok and result.attempts == 2 and len(server.requests) == 2


def test_persistent_500_gives_up_after_the_retries():
    with FakeOpenAIServer() as server:
        result = _client(server, max_retries=2).complete(ChatRequest("500"))
    assert result.failure == HTTP_ERROR and result.attempts == 3 and len(server.requests) == 3
    assert "HTTP 500" in result.reason


def test_other_4xx_are_not_retried():
    with FakeOpenAIServer() as server:
        result = _client(server).complete(ChatRequest("400"))
    assert result.failure == HTTP_ERROR and "HTTP 400" in result.reason
    assert len(server.requests) == 1


def test_concurrency_is_bounded_and_results_keep_their_order():
    prompts = [f"request {i}" for i in range(6)]
    with FakeOpenAIServer(script={"request": ["pause"]}, pause_s=0.1) as server:
        results = _client(server, max_workers=2).complete_many([ChatRequest(p) for p in prompts])
    assert [r.text for r in results] == [f"echo: {p}" for p in prompts]
    assert server.max_in_flight == 2


def test_the_api_key_never_leaks(caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer() as server:
        client = _client(server, max_retries=1)
        echoed = client.complete(ChatRequest("echo_auth"))
        failing = client.complete(ChatRequest("500"))
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"  # the key was really sent
    assert echoed.failure == HTTP_ERROR and "HTTP 401" in echoed.reason
    assert SECRET not in echoed.reason and "[redacted]" in echoed.reason
    assert failing.failure == HTTP_ERROR and SECRET not in failing.reason
    assert caplog.records, "a retry should have been logged"
    assert SECRET not in caplog.text
    assert SECRET not in repr(client) and SECRET.encode() not in pickle.dumps(client)


def test_an_unreachable_server_fails_without_the_key_in_the_reason():
    with FakeOpenAIServer() as server:
        url = server.base_url
    client = OpenAIChatClient(url, "fake-vlm", api_key_env=KEY_ENV, timeout_s=0.2, max_retries=1, backoff_s=0.01)
    result = client.complete(ChatRequest("good"))
    assert result.failure == HTTP_ERROR and result.attempts == 2 and SECRET not in result.reason


def test_no_key_in_the_environment_sends_no_authorization_header(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with FakeOpenAIServer() as server:
        assert _client(server).complete(ChatRequest("good")).ok
    assert "Authorization" not in server.requests[0]["headers"]


def test_read_choice_on_hand_written_bodies():
    assert read_choice({"choices": []}).failure == HTTP_ERROR
    filtered = {"choices": [{"message": {"content": "partial"}, "finish_reason": "content_filter"}]}
    assert read_choice(filtered).failure == REFUSED
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a "}, {"type": "text", "text": "cat"}]}}]}
    assert read_choice(parts).text == "a cat"
    # a reply that merely mentions what the model cannot see is still an answer
    assert read_choice({"choices": [{"message": {"content": "I can see a cat, but no cup."}}]}).ok


def test_the_choose_edit_stage_runs_on_the_server_and_retries_a_refusal():
    rgb = _image(seed=5)
    row = {
        "task": "color_alteration",
        "status": schema.PENDING,
        "source_image": schema.image_value(encode_png(rgb)),
        "_work": schema.dumps({}),
    }
    # the stricter retry prompt also contains the first prompt's words, so it is listed first
    script = {"previous answer could not be used": ["good"], "Answer with one JSON object": ["refusal"]}
    with FakeOpenAIServer(script=script) as server:
        client = _client(server)
        stage = QwenChooseEditStage(client.model, generate=client.generate)
        [out] = stage.process_batch([row])
    assert len(server.requests) == 2
    assert work(out)["edit_choice"] == {"object": "cup", "change_to": "red"}
    info = provenance(out)["stages"]["mllm_choose_edit"]
    assert info["attempts"] == 2 and info["rejected_replies"][0].startswith("refused")
