"""`adapters serve` over HTTP, with the official openai client: what it lists, what it answers (the same
text as the version in process), streaming, chat, live aliases, concurrency, and every error."""

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import torch
from conftest import API_KEY, TINY, Served
from support import cli_process

PROMPT = "The court held that"
# Big enough that a loaded adapter changes the greedy continuation of the random-init LoRAs.
TOKENS = 24


def client(served: Served, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.server.url + "/v1", api_key=key, max_retries=0, timeout=120)


@torch.no_grad()
def in_process(served: Served, ref: str, prompt_ids: list[int] | None = None, tokens: int = TOKENS) -> str:
    """What ``Ledger.load(ref)`` generates greedily for PROMPT (or ``prompt_ids``)."""
    model, tokenizer = served.ledger.load(ref, device="cpu")
    ids = prompt_ids if prompt_ids is not None else tokenizer(PROMPT)["input_ids"]
    inputs = torch.tensor([ids])
    output = model.generate(
        input_ids=inputs,
        attention_mask=torch.ones_like(inputs),
        max_new_tokens=tokens,
        do_sample=False,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    return str(tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True))


_references: dict[tuple[str, str], str] = {}


def reference(served: Served, ref: str) -> str:
    if (ref, PROMPT) not in _references:
        _references[ref, PROMPT] = in_process(served, ref)
    return _references[ref, PROMPT]


def complete(served: Served, model: str, **options: Any) -> tuple[str, str, dict[str, str]]:
    """(model field, text, headers) of one greedy completion."""
    raw = client(served).completions.with_raw_response.create(
        model=model, prompt=PROMPT, max_tokens=TOKENS, temperature=0, **options
    )
    answer = raw.parse()
    return answer.model, answer.choices[0].text, dict(raw.headers)


# ---- listing ---------------------------------------------------------------------------------------


def test_models_lists_every_name_with_the_version_and_digest_it_resolves_to(served: Served) -> None:
    listed = {entry.id: entry for entry in client(served).models.list().data}
    assert set(listed) == {
        TINY,
        "legal",
        "legal@1",
        "legal@2",
        "legal@champion",
        "style",
        "style@1",
        "drift",
        "drift@1",
        "drift@2",
    }
    legal2 = served.ledger.version("legal@2")
    for name in ("legal", "legal@2"):
        entry = listed[name].model_dump()
        assert entry["version"] == "legal@2" and entry["digest"] == legal2.artifact_digest
    assert listed["legal@champion"].model_dump()["version"] == "legal@1"
    assert listed[TINY].model_dump()["version"] == TINY
    assert "other" not in listed  # on another base


# ---- answers ---------------------------------------------------------------------------------------


def test_greedy_completion_is_what_the_version_gives_in_process(served: Served) -> None:
    model, text, headers = complete(served, "legal")
    assert model == "legal@2"
    assert headers["x-loraledger-version"] == "legal@2"
    assert headers["x-loraledger-digest"] == served.ledger.version("legal@2").artifact_digest
    assert text == reference(served, "legal@2")
    assert text != reference(served, "legal@1")  # the adapters differ, so the check can fail

    model, text, _ = complete(served, "legal@champion")
    assert (model, text) == ("legal@1", reference(served, "legal@1"))
    model, text, _ = complete(served, TINY)
    assert (model, text) == (TINY, reference(served, "legal@base"))


def test_two_names_of_one_version_share_one_loaded_copy(served: Served) -> None:
    complete(served, "legal")
    complete(served, "legal@2")
    digest = served.ledger.version("legal@2").artifact_digest
    assert served.server.health()["loaded"].count(digest) == 1


def test_usage_and_finish_reason(served: Served) -> None:
    answer = client(served).completions.create(model="legal", prompt=PROMPT, max_tokens=5, temperature=0)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    prompt_tokens = len(served.ledger.load("legal@2", device="cpu").tokenizer(PROMPT)["input_ids"])
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt_tokens, 5)
    assert answer.usage.total_tokens == prompt_tokens + 5


def test_stop_string_cuts_the_text(served: Served) -> None:
    full = reference(served, "legal@2")
    assert len(full) > 8, full
    middle = len(full) // 2
    stop = full[middle : middle + 3]  # a piece some way into the greedy continuation
    _, text, _ = complete(served, "legal", stop=[stop])
    assert text == full[: full.index(stop)]
    answer = client(served).completions.create(
        model="legal", prompt=PROMPT, max_tokens=TOKENS, temperature=0, stop=stop
    )
    assert answer.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_repeatable(served: Served) -> None:
    def sample(seed: int) -> str:
        answer = client(served).completions.create(
            model="style", prompt=PROMPT, max_tokens=16, temperature=1.0, top_p=0.9, seed=seed
        )
        return answer.choices[0].text

    assert sample(11) == sample(11)
    assert len({sample(11), sample(12), sample(13)}) > 1


def test_streamed_completion_joins_into_the_same_text(served: Served) -> None:
    stream = client(served).completions.create(
        model="legal@1", prompt=PROMPT, max_tokens=TOKENS, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert {chunk.model for chunk in chunks} == {"legal@1"}
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    assert text == reference(served, "legal@1")
    assert len([c for c in chunks if c.choices and c.choices[0].text]) > 1  # token by token, not one lump
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == TOKENS


def test_chat_through_the_chat_template_plain_and_streamed(served: Served) -> None:
    messages = [{"role": "user", "content": "What did the court hold?"}]
    tokenizer = served.ledger.load("style@1", device="cpu").tokenizer
    ids = list(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"]
    )
    expected = in_process(served, "style@1", ids, tokens=20)

    answer = client(served).chat.completions.create(
        model="style",
        messages=messages,
        max_tokens=20,
        temperature=0,  # type: ignore[arg-type]
    )
    assert answer.model == "style@1"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == expected
    assert answer.usage is not None and answer.usage.prompt_tokens == len(ids)

    stream = client(served).chat.completions.create(
        model="style",
        messages=messages,
        max_tokens=20,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert {c.model for c in chunks} == {"style@1"}


def test_concurrent_requests_for_several_versions_each_get_their_own(served: Served) -> None:
    # Three targets with room for two adapters: requests interleave loading, evicting and generating.
    targets = ["legal@1", "style@1", "legal@2", TINY] * 3
    expected = {target: complete(served, target)[1] for target in set(targets)}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda target: complete(served, target)[:2], targets))
    assert answers == [(target, expected[target]) for target in targets]
    assert len(set(expected.values())) == 4


def test_rollback_in_another_process_answers_the_next_request(served: Served) -> None:
    before_model, before_text, _ = complete(served, "drift")
    assert before_model == "drift@2" and before_text == reference(served, "drift@2")

    done = cli_process.run("rollback", "drift", "--to", "drift@1", workdir=served.workdir / "rollback",
                           **served.env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    after_model, after_text, headers = complete(served, "drift")
    assert after_model == "drift@1" and headers["x-loraledger-version"] == "drift@1"
    assert after_text == reference(served, "drift@1") != before_text


# ---- errors ----------------------------------------------------------------------------------------


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("model", ["nosuch", "legal@9", "legal@nosuchalias", "bad name!"])
def test_unknown_model_is_404(served: Served, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(served).completions.create(model=model, prompt=PROMPT, max_tokens=2)
    error = error_of(caught.value)
    assert error["code"] == "model_not_found" and error["param"] == "model"


def test_version_on_another_base_is_refused(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).completions.create(model="other", prompt=PROMPT, max_tokens=2)
    error = error_of(caught.value)
    assert error["code"] == "model_base_mismatch"
    assert "other@1" in error["message"] and TINY in error["message"]


def test_api_key_missing_or_wrong_is_401(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(served, key="wrong").models.list()
    assert error_of(caught.value)["code"] == "invalid_api_key"
    status, _, body = served.server.request("GET", "/v1/models", headers={"Authorization": ""})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert "Missing" in body["error"]["message"]
    # Checked before the body is read: no hint about the request from an unauthenticated client.
    status, _, body = served.server.request("POST", "/v1/completions", b"{", headers={"Authorization": ""})
    assert status == 401


@pytest.mark.parametrize(
    ("options", "status", "code"),
    [
        ({"temperature": 5}, 422, "invalid_value"),
        ({"max_tokens": 0}, 422, "invalid_value"),
        ({"max_tokens": 65}, 400, "max_tokens_too_large"),
        ({"n": 2}, 400, "unsupported_parameter"),
        ({"stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_value"),
    ],
)
def test_bad_request_parameters(served: Served, options: dict[str, Any], status: int, code: str) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client(served).completions.create(model="legal", prompt=PROMPT, **options)
    assert caught.value.status_code == status
    assert error_of(caught.value)["code"] == code


def test_over_long_prompt_is_400(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).completions.create(model="legal", prompt="word " * 600, max_tokens=8)
    error = error_of(caught.value)
    assert error["code"] == "context_length_exceeded" and "512" in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:  # chat's default max_tokens: what fits, if any
        client(served).chat.completions.create(
            model="legal", messages=[{"role": "user", "content": "word " * 600}]
        )
    assert error_of(caught.value)["code"] == "context_length_exceeded"


def test_malformed_and_oversized_bodies(served: Served) -> None:
    status, _, body = served.server.request("POST", "/v1/completions", b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, _, body = served.server.request(
        "POST", "/v1/completions", json.dumps({"model": "legal"}).encode()
    )
    assert status == 422 and body["error"]["param"] == "prompt"
    huge = json.dumps({"model": "legal", "prompt": "x" * 2_000_000}).encode()
    status, _, body = served.server.request("POST", "/v1/completions", huge)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    status, _, body = served.server.request("GET", "/v1/nothing")
    assert status == 404 and body["error"]["type"] == "invalid_request_error"


def test_prompts_are_not_logged(served: Served) -> None:
    secret = "confidential-merger-terms-7731"
    client(served).completions.create(model="legal", prompt=secret, max_tokens=2)
    log = "".join((served.workdir / "server" / stream).read_text() for stream in ("stdout", "stderr"))
    assert "POST /v1/completions" in log  # the access log is there...
    assert secret not in log  # ...without the prompt
