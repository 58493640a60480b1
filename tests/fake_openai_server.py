"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests.

Each request's behaviour comes from its prompt (the text part of the last user message): the
first `script` key contained in the prompt gives a list of behaviours, used one per request with
that key (the last one repeats); with no matching key, a prompt that is itself a behaviour name
gets that behaviour, anything else gets `default` ("good"). Behaviours with an argument:
"raw:TEXT" answers TEXT as it is; "compose" answers a captioner prompt from its own metadata
(tests/fake_captioner.py). Every request is recorded."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback_server import LoopbackServer, QuietJSONHandler, chat_completion

GOOD_JSON = '{"objects": ["cat", "cup"], "object": "cup", "change_to": "red"}'

BEHAVIOURS = (
    "good",  # a JSON answer
    "malformed",  # JSON cut off half way
    "fenced",  # the JSON inside ```json fences, with prose around it
    "refusal",  # a refusal in the content
    "refusal_field",  # no content, a `refusal` field
    "empty",  # empty content
    "slow",  # a good answer after `slow_s`
    "pause",  # echoes the prompt after a short pause (for concurrency checks)
    "429",  # too many requests, with Retry-After
    "500",  # server error
    "400",  # bad request
    "echo_auth",  # 401 whose message repeats the Authorization header, as careless servers do
    "compose",  # a captioner's answer built from the prompt's metadata (tests/fake_captioner.py)
)


class FakeOpenAIServer(LoopbackServer):
    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        slow_s: float = 1.0,
        retry_after: str = "0.3",
        pause_s: float = 0.1,
        default: str = "good",
        port: int = 0,
        models: tuple[str, ...] = ("fake-vlm", "fake-captioner", "fake-judge", "fake"),
    ):
        self.script = dict(script or {})
        self.default = default
        self.slow_s, self.retry_after, self.pause_s = slow_s, retry_after, pause_s
        self.requests: list[dict[str, Any]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), port, models)

    def prompts(self) -> list[str]:
        return [r["prompt"] for r in self.requests]

    def _behaviour(self, prompt: str) -> str:
        with self._lock:
            for key, plan in self.script.items():
                if key in prompt:
                    used = self._used.get(key, 0)
                    self._used[key] = used + 1
                    return plan[min(used, len(plan) - 1)]
        return prompt if prompt in BEHAVIOURS else self.default

    def _enter(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(record)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _prompt_of(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            prompt = _prompt_of(body)
            server._enter({"path": self.path, "headers": dict(self.headers), "body": body, "prompt": prompt})
            self._counted = True
            try:
                self._respond(server._behaviour(prompt), prompt)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left
            finally:
                self._leave_once()

        def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            # out of flight before the reply is written: a client holding the reply may send its
            # next request at once, and that one must not find this one still counted
            self._leave_once()
            super()._json(status, payload, headers)

        def _leave_once(self) -> None:
            if getattr(self, "_counted", False):
                self._counted = False
                server._leave()

        def _respond(self, behaviour: str, prompt: str) -> None:
            if behaviour.startswith("raw:"):
                return self._json(200, chat_completion(behaviour[len("raw:") :]))
            if behaviour == "compose":
                from tests.fake_captioner import compose

                return self._json(200, chat_completion(compose(prompt)))
            if behaviour == "good":
                return self._json(200, chat_completion(GOOD_JSON))
            if behaviour == "malformed":
                return self._json(200, chat_completion(GOOD_JSON[:40]))
            if behaviour == "fenced":
                return self._json(200, chat_completion(f"Here is my answer:\n```json\n{GOOD_JSON}\n```\nHope this helps."))
            if behaviour == "refusal":
                return self._json(200, chat_completion("I'm sorry, but I can't help with that."))
            if behaviour == "refusal_field":
                return self._json(200, chat_completion(None, refusal="This request was declined."))
            if behaviour == "empty":
                return self._json(200, chat_completion(""))
            if behaviour == "slow":
                time.sleep(server.slow_s)
                return self._json(200, chat_completion(GOOD_JSON))
            if behaviour == "pause":
                time.sleep(server.pause_s)
                return self._json(200, chat_completion(f"echo: {prompt}"))
            if behaviour == "429":
                return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
            if behaviour == "500":
                return self._json(500, {"error": {"message": "internal error"}})
            if behaviour == "400":
                return self._json(400, {"error": {"message": "bad request: unknown field"}})
            if behaviour == "echo_auth":
                message = f"Incorrect API key provided: {self.headers.get('Authorization')}"
                return self._json(401, {"error": {"message": message}})
            raise ValueError(f"unknown behaviour {behaviour!r}")

    return Handler
