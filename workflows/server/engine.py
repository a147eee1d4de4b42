"""One base model in memory with versions' adapters put on it on demand, and generation on it.

The adapters live in one ``PeftModel`` (``load_adapter`` under a name derived from the artifact
digest, so two names of one version share one copy); which one is active is state of that model, so
choosing it and generating happen under one lock: a request finishes on the adapter it started with
even if an alias moves meanwhile, and an adapter is never evicted while it generates. On a CPU, torch
already spreads one generation over the cores; requests for different versions take turns.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from loraledger.server.catalog import Target


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (end of text or a stop string) or "length"


@dataclass
class _Watch:
    """Follows the completion token by token: decodes it, cuts it at a stop string, tells the
    streaming side what became safe to show, and asks generate to stop when a stop string or a
    disconnect calls for it."""

    tokenizer: Any
    tokenizer_lock: threading.Lock
    stops: tuple[str, ...]
    on_text: Callable[[str], None] | None
    cancelled: threading.Event
    ids: list[int] = field(default_factory=list)
    shown: str = ""
    stopped_by_string: bool = False

    def text(self) -> str:
        with self.tokenizer_lock:
            text: str = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = [text.index(stop) for stop in self.stops if stop in text]
        if cut:
            self.stopped_by_string = True
            return text[: min(cut)]
        return text

    def add(self, token_ids: list[int]) -> None:
        self.ids += token_ids
        text = self.text()
        if self.on_text is None:
            return
        if not self.stopped_by_string:
            # Hold back what may be the start of a stop string, or half of a multi-byte character.
            hold = max((len(stop) - 1 for stop in self.stops), default=0)
            safe = text[: len(text) - hold] if hold else text
            text = safe[:-1] if safe.endswith("\ufffd") else safe
        if len(text) > len(self.shown):
            self.on_text(text[len(self.shown) :])
            self.shown = text

    def finish(self) -> str:
        text = self.text()
        if self.on_text is not None and len(text) > len(self.shown):
            self.on_text(text[len(self.shown) :])
        self.shown = text
        return text


class _Streamer(BaseStreamer):  # type: ignore[misc]
    """generate's hook for each new token (its first call carries the prompt)."""

    def __init__(self, watch: _Watch) -> None:
        self.watch = watch
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.watch.add(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class _Halt(StoppingCriteria):  # type: ignore[misc]
    def __init__(self, watch: _Watch) -> None:
        self.watch = watch

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        halt = self.watch.stopped_by_string or self.watch.cancelled.is_set()
        return torch.full((input_ids.shape[0],), halt, dtype=torch.bool, device=input_ids.device)


class Engine:
    def __init__(self, model: Any, tokenizer: Any, *, max_loaded: int) -> None:
        self.model = model  # the bare base until the first adapter turns it into a PeftModel
        self.tokenizer = tokenizer
        self.max_loaded = max_loaded
        self.lock = threading.Lock()
        # A fast tokenizer's Rust side refuses concurrent use ("Already borrowed"): one caller at a time.
        self.tokenizer_lock = threading.Lock()
        self.loaded: OrderedDict[str, str] = OrderedDict()  # adapter name -> artifact digest, LRU first
        config = model.config
        self.context = int(getattr(config, "max_position_embeddings", None) or config.n_positions)

    # ---- prompts ------------------------------------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        with self.tokenizer_lock:
            ids: list[int] = self.tokenizer(prompt)["input_ids"]
        return ids

    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        with self.tokenizer_lock:
            encoded = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return list(ids)

    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    # ---- adapters -----------------------------------------------------------------------------

    def loaded_digests(self) -> list[str]:
        with self.lock:
            return list(self.loaded.values())

    def _activate(self, target: Target, folder: Path | None) -> str | None:
        """Put ``target``'s adapter on the base (evicting the least recently used beyond the limit)
        and make it the active one; called with the lock held."""
        if target.digest is None or folder is None:
            return None
        from peft import PeftModel

        name = "v_" + target.digest.partition(":")[2][:32]
        if name in self.loaded:
            self.loaded.move_to_end(name)
        else:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(
                    self.model, str(folder), adapter_name=name, is_trainable=False
                )
            self.model.eval()
            self.loaded[name] = target.digest
            while len(self.loaded) > self.max_loaded:
                evicted, _ = self.loaded.popitem(last=False)
                self.model.delete_adapter(evicted)
        self.model.set_adapter(name)
        return name

    # ---- generation ---------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        target: Target,
        folder: Path | None,
        prompt_ids: list[int],
        sampling: Sampling,
        *,
        on_text: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> Generated:
        watch = _Watch(
            self.tokenizer, self.tokenizer_lock, sampling.stop, on_text, cancelled or threading.Event()
        )
        device = next(self.model.parameters()).device
        inputs = torch.tensor([prompt_ids], dtype=torch.long, device=device)
        options: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens,
            "use_cache": True,
            "pad_token_id": self.tokenizer.pad_token_id,
            "streamer": _Streamer(watch),
            "stopping_criteria": StoppingCriteriaList([_Halt(watch)]),
        }
        if sampling.temperature == 0:
            options |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        else:
            options |= {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
            options["top_k"] = None  # OpenAI has no top-k; the model's default (often 50) would cut
        with self.lock:
            active = self._activate(target, folder)
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            if active is not None:
                self.model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), **options)
            else:
                self._generate_bare(inputs, options)
        text = watch.finish()
        eos = self.tokenizer.eos_token_id
        ended = bool(watch.ids) and watch.ids[-1] == eos
        finish = "stop" if watch.stopped_by_string or ended else "length"
        return Generated(text, len(prompt_ids), len(watch.ids), finish)

    def _generate_bare(self, inputs: torch.Tensor, options: dict[str, Any]) -> None:
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            with self.model.disable_adapter():
                self.model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), **options)
        else:
            self.model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), **options)
