"""A client for OpenAI-compatible chat servers (vLLM, GPT-4.1) with images, for the text and
judging stages.

Every request ends in a `ChatResult`: the reply's text, or a failure kind with a reason. Busy or
failing servers (429, 5xx, timeouts, dropped connections) are retried with exponential backoff,
honouring Retry-After; other 4xx answers are final. A refusal is a failure, never an answer.
The API key is read from the environment at each request and never stored on the client, logged
or put in a reason or an exception."""

from __future__ import annotations

import base64
import email.utils
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import requests

from pipeline.core.image_io import encode_png, to_png
from stages.models.circuit import CircuitBreaker

log = logging.getLogger(__name__)

TIMEOUT, REFUSED, HTTP_ERROR, EMPTY = "timeout", "refused", "http_error", "empty"
_REFUSAL = re.compile(
    r"^\W*(?:(?:i'?m|i am)\s+sorry|sorry|i apologi[sz]e|unfortunately)?[\s,.!]*(?:but\s+)?"
    r"i\s*(?:can'?t|cannot|can not|won'?t|will not|am unable to|'m unable to|am not able to|'m not able to)\s+"
    r"(?:help|assist|comply|provide|do|fulfil|fulfill|process|answer|describe|identify|support|engage)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ChatRequest:
    prompt: str
    images: Sequence[np.ndarray | bytes] = ()  # uint8 HxWx3 arrays or encoded images; sent before the text
    system: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0


@dataclass(frozen=True)
class ChatResult:
    text: str | None = None
    failure: str | None = None  # TIMEOUT, REFUSED, HTTP_ERROR or EMPTY
    reason: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.failure is None


class _Retryable(Exception):
    def __init__(self, failure: str, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.failure, self.reason, self.retry_after = failure, reason, retry_after


@dataclass
class OpenAIChatClient:
    base_url: str  # up to and including /v1, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # unset: no Authorization header (a local vLLM needs none)
    timeout_s: float = 60.0
    max_retries: int = 3  # attempts after the first
    backoff_s: float = 1.0  # first wait; doubles each retry
    max_backoff_s: float = 30.0
    max_workers: int = 8  # requests in flight at once
    extra_body: dict[str, Any] = field(default_factory=dict)
    breaker: CircuitBreaker | None = None  # shared by every request of this client; None: never stops
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # sessions do not travel to other processes (Ray actors); each thread opens its own
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _local=threading.local())

    # -- public -----------------------------------------------------------------------------

    def complete_many(self, requests_: Sequence[ChatRequest]) -> list[ChatResult]:
        """One result per request, in order; at most `max_workers` in flight."""
        if not requests_:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(requests_)))) as pool:
            return list(pool.map(self.complete, requests_))

    def generate(
        self, images: Sequence[Any], prompts: Sequence[str], max_new_tokens: int = 512, temperature: float = 0.0
    ) -> list[ChatResult]:
        """The local model's calling convention: one image and one prompt per reply."""
        return self.complete_many(
            [
                ChatRequest(p, () if img is None else (img,), max_tokens=max_new_tokens, temperature=temperature)
                for img, p in zip(images, prompts, strict=True)
            ]
        )

    def complete(self, request: ChatRequest) -> ChatResult:
        if self.breaker is not None and self.breaker.open:  # the server is down: do not call it again
            return ChatResult(None, HTTP_ERROR, "circuit open: not sent", attempts=0)
        result = self._complete(request)
        if self.breaker is not None:
            # only a failed exchange counts; a refusal or an empty reply is a server that works
            self.breaker.record(result.failure not in (TIMEOUT, HTTP_ERROR), result.reason)
        return result

    def _complete(self, request: ChatRequest) -> ChatResult:
        key = os.environ.get(self.api_key_env) or None
        payload = self._payload(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self._attempt(payload, key)
                return ChatResult(result.text, result.failure, _redact(result.reason, key), attempt)
            except _Retryable as busy:
                reason = _redact(busy.reason, key)
                if attempt > self.max_retries:
                    return ChatResult(None, busy.failure, f"{reason} (gave up after {attempt} attempts)", attempt)
                wait = self._wait_s(attempt, busy.retry_after)
                log.warning(
                    "chat request to %s: %s; retry %d of %d in %.2f s", self.model, reason, attempt, self.max_retries, wait
                )
                time.sleep(wait)

    # -- one HTTP exchange ------------------------------------------------------------------

    def _attempt(self, payload: dict[str, Any], key: str | None) -> ChatResult:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        try:
            response = self._session().post(url, json=payload, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise _Retryable(TIMEOUT, f"no reply within {self.timeout_s:g} s") from None
        except requests.ConnectionError as exc:
            raise _Retryable(HTTP_ERROR, f"connection failed: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(HTTP_ERROR, f"HTTP {status}: {_snippet(response.text)}", _retry_after_s(response))
        if status != 200:
            return ChatResult(None, HTTP_ERROR, f"HTTP {status}: {_snippet(response.text)}")
        try:
            body = response.json()
        except ValueError:
            return ChatResult(None, HTTP_ERROR, f"HTTP 200 with a body that is not JSON: {_snippet(response.text)}")
        return read_choice(body)

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": png_data_url(image)}} for image in request.images
        ]
        content.append({"type": "text", "text": request.prompt})
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages.append({"role": "user", "content": content})
        return {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            **self.extra_body,
        }

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # no proxy or netrc credentials picked up from the environment
        return session

    def _wait_s(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_s)
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)


# -- plain functions, testable on hand-written server replies ----------------------------------


def read_choice(body: dict[str, Any]) -> ChatResult:
    """The first choice of a chat completion: its text, or why there is none."""
    try:
        choice = body["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return ChatResult(None, HTTP_ERROR, f"no choices in the reply: {_snippet(str(body))}")
    if message.get("refusal"):
        return ChatResult(None, REFUSED, f"refusal: {_snippet(str(message['refusal']))}")
    if choice.get("finish_reason") == "content_filter":
        return ChatResult(None, REFUSED, "stopped by the server's content filter")
    text = message_text(message.get("content"))
    if not text.strip():
        return ChatResult(None, EMPTY, f"empty content (finish_reason={choice.get('finish_reason')})")
    if is_refusal(text):
        return ChatResult(None, REFUSED, f"refusal: {_snippet(text)}")
    return ChatResult(text)


def message_text(content: Any) -> str:
    """Content is a string, or (some servers) a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text.strip()[:300].replace("\u2019", "'")))


def png_data_url(image: np.ndarray | bytes) -> str:
    data = encode_png(image) if isinstance(image, np.ndarray) else to_png(bytes(image))
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:  # the other form Retry-After may take: an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _redact(text: str | None, key: str | None) -> str | None:
    if not text or not key:
        return text
    return text.replace(key, "[redacted]")
