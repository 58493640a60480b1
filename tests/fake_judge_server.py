"""A scripted OpenAI-compatible judge on 127.0.0.1 for the VIEScore tests.

A judge request is told apart by what it shows: two images make an SC call, one image a PQ call.
The row is named by the red value of the top-left pixel of the last image (the edited picture),
so each test picture carries its own script. `script[(mark, "sc" | "pq")]` is a list of
behaviours used one per request (the last one repeats); unscripted requests get `default`.

Behaviours: "good:A,B" (a JSON answer with score [A, B]; A and B are JSON numbers, so 7.5 or
11 go out as written), "fenced:A,B" (the same inside ```json fences with prose around),
"raw:TEXT" (TEXT as the reply), "malformed" (JSON cut off), "prose" (an answer in words),
"refusal", "refusal_field", "empty", "slow" (a good answer after `slow_s`), "429" (with
Retry-After), "500". Every request is recorded with what it showed."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback_server import (
    LoopbackServer,
    QuietJSONHandler,
    chat_completion,
    decode_data_url,
)


def good(a: Any, b: Any, reasoning: str = "scripted") -> str:
    return json.dumps({"score": [a, b], "reasoning": reasoning})


class FakeJudgeServer(LoopbackServer):
    def __init__(
        self,
        script: dict[tuple[int, str], list[str]] | None = None,
        default: str = "good:5,5",
        slow_s: float = 1.0,
        retry_after: str = "0.05",
        models: tuple[str, ...] = ("fake-judge",),
    ):
        self.script = {key: list(plan) for key, plan in (script or {}).items()}
        self.default, self.slow_s, self.retry_after = default, slow_s, retry_after
        self.requests: list[dict[str, Any]] = []
        self._used: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), models=models)

    def requests_for(self, mark: int, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["mark"] == mark and r["kind"] == kind]

    def _behaviour(self, mark: int, kind: str) -> str:
        with self._lock:
            plan = self.script.get((mark, kind))
            if not plan:
                return self.default
            used = self._used.get((mark, kind), 0)
            self._used[(mark, kind)] = used + 1
            return plan[min(used, len(plan) - 1)]


def _handler_for(server: FakeJudgeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietJSONHandler):

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            content = body["messages"][-1]["content"]
            images = [decode_data_url(p["image_url"]["url"]) for p in content if p.get("type") == "image_url"]
            kind = "sc" if len(images) == 2 else "pq"
            mark = int(images[-1][0, 0, 0]) if images else -1
            record = {
                "kind": kind,
                "mark": mark,
                "order": [p.get("type") for p in content],
                "images": images,
                "prompt": "".join(p.get("text", "") for p in content if p.get("type") == "text"),
                "body": {k: v for k, v in body.items() if k != "messages"},
                "authorization": self.headers.get("Authorization"),
            }
            record["behaviour"] = behaviour = server._behaviour(mark, kind)
            with server._lock:
                server.requests.append(record)
            try:
                self._respond(behaviour)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting

        def _respond(self, behaviour: str) -> None:
            name, _, arg = behaviour.partition(":")
            if name == "good":
                return self._json(200, chat_completion(good(*json.loads(f"[{arg}]"))))
            if name == "fenced":
                return self._json(200, chat_completion(f"My assessment:\n```json\n{good(*json.loads(f'[{arg}]'))}\n```\nDone."))
            if name == "raw":
                return self._json(200, chat_completion(arg))
            if name == "malformed":
                return self._json(200, chat_completion('{"score": [8, 7], "reason'))
            if name == "prose":
                return self._json(200, chat_completion("The edit is convincing; I would rate it 8 out of 10 overall."))
            if name == "refusal":
                return self._json(200, chat_completion("I'm sorry, but I can't help with that request."))
            if name == "refusal_field":
                return self._json(200, chat_completion(None, refusal="This request was declined."))
            if name == "empty":
                return self._json(200, chat_completion(""))
            if name == "slow":
                time.sleep(server.slow_s)
                return self._json(200, chat_completion(good(5, 5)))
            if name == "429":
                return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": server.retry_after})
            if name == "500":
                return self._json(500, {"error": {"message": "internal error"}})
            raise ValueError(f"unknown behaviour {behaviour!r}")

    return Handler
