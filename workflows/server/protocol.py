"""The request bodies of the OpenAI API we accept, checked by pydantic (bad types: 422), and the
response objects we build. Fields we do not implement are ignored, as OpenAI-compatible servers do,
except those that would change the answer's shape (``n`` > 1, ``logprobs``, ``echo``): refused."""

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from loraledger.server.engine import Generated


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=300)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1)

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class CompletionRequest(_Request):
    prompt: str | list[str]
    echo: bool | None = False
    logprobs: int | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]]

    def text(self) -> str | None:
        """The message's text (content parts of type text, joined); None for other parts."""
        if isinstance(self.content, str):
            return self.content
        if all(part.get("type") == "text" and isinstance(part.get("text"), str) for part in self.content):
            return "".join(part["text"] for part in self.content)
        return None


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = False


def _ids(kind: str) -> tuple[str, int]:
    return f"{kind}-{uuid.uuid4().hex[:24]}", int(time.time())


def usage(result: Generated) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def completion(model: str, result: Generated) -> dict[str, Any]:
    ident, created = _ids("cmpl")
    choice = {"index": 0, "text": result.text, "finish_reason": result.finish_reason, "logprobs": None}
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(result),
    }


def chat_completion(model: str, result: Generated) -> dict[str, Any]:
    ident, created = _ids("chatcmpl")
    message = {"role": "assistant", "content": result.text}
    choice = {"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None}
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(result),
    }


class Chunks:
    """The server-sent events of one streamed answer, all with one id and the exact version."""

    def __init__(self, model: str, *, chat: bool) -> None:
        self.model = model
        self.chat = chat
        self.id, self.created = _ids("chatcmpl" if chat else "cmpl")

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def text(self, delta: str, *, first: bool = False) -> dict[str, Any]:
        if self.chat:
            content: dict[str, Any] = {"content": delta} | ({"role": "assistant"} if first else {})
            return self._chunk([{"index": 0, "delta": content, "finish_reason": None, "logprobs": None}])
        return self._chunk([{"index": 0, "text": delta, "finish_reason": None, "logprobs": None}])

    def end(self, result: Generated) -> dict[str, Any]:
        reason = result.finish_reason
        if self.chat:
            return self._chunk([{"index": 0, "delta": {}, "finish_reason": reason, "logprobs": None}])
        return self._chunk([{"index": 0, "text": "", "finish_reason": reason, "logprobs": None}])

    def usage(self, result: Generated) -> dict[str, Any]:
        return self._chunk([], usage=usage(result))
