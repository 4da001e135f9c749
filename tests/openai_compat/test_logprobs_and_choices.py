"""logprobs/top_logprobs and n > 1 on /v1/chat/completions with the real `openai` SDK, a
live ASGI server and the fake vendors: the log probabilities the client reads are the ones
the vendor sent; n choices are n questions, each stored, billed and admitted as one."""

from __future__ import annotations

import time

import openai
import pytest

from llmplatform.core.models import ApiKey
from llmplatform.core.services import api_key_set_limits
from openai_compat.serializers import MAX_CHOICES
from queries.models import Query
from tests.openai_compat.clients import VENDOR_MODELS, sdk, stored_query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "Count to ten"}]
UNFINISHED = (Query.Status.PENDING, Query.Status.RUNNING)


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes."""


def _vendor_logprobs(fake) -> tuple[tuple, list[dict]]:
    """((logprobs, top_logprobs) as the writer asked the vendor, the log probabilities the
    fake vendor sent it, in OpenAI's shape)."""
    [reply] = [reply for reply in fake.replies if reply.top_logprobs is not None]
    bodies = [r.body or {} for r in fake.chat_requests]
    if fake.adapter.name == "google":
        [config] = [b["generationConfig"] for b in bodies if "generationConfig" in b
                    and b["generationConfig"].get("responseLogprobs")]  # fmt: skip
        asked = (config["responseLogprobs"], config["logprobs"])
    else:
        [body] = [b for b in bodies if b.get("logprobs")]
        asked = (body["logprobs"], body["top_logprobs"])
    return asked, fake.adapter.token_logprobs(reply)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("vendor", ["openai", "openrouter", "google"])
def test_logprobs_are_what_the_vendor_sent(live_daphne_in_process, owner, fakes, vendor, stream):
    fakes[vendor].chunk_count = 4
    created = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS[vendor], messages=MESSAGES, logprobs=True, top_logprobs=2, stream=stream
    )
    if stream:
        chunks = list(created)
        completion_id = chunks[0].id
        content = [
            token.model_dump()
            for chunk in chunks
            for choice in chunk.choices
            if choice.logprobs is not None
            for token in choice.logprobs.content or []
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion_id = created.id
        choice = created.choices[0]
        assert choice.logprobs is not None and choice.logprobs.refusal is None
        content = [token.model_dump() for token in choice.logprobs.content or []]
        text = choice.message.content
    asked, vendor_content = _vendor_logprobs(fakes[vendor])
    assert asked == (True, 2)
    assert len(vendor_content) == 4
    assert content == vendor_content
    assert all(len(token["top_logprobs"]) == 2 for token in content)
    assert "".join(token["token"] for token in content) == text
    query = stored_query(completion_id)
    assert query.request["sampling"] == {"logprobs": True, "top_logprobs": 2}
    assert query.metadata["logprobs"] == vendor_content


@pytest.mark.parametrize("stream", [False, True])
def test_without_logprobs_nothing_is_asked_or_kept(live_daphne_in_process, owner, fakes, stream):
    created = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS["openai"], messages=MESSAGES, stream=stream, logprobs=False
    )
    chunks = list(created) if stream else [created]
    assert all(choice.logprobs is None for chunk in chunks for choice in chunk.choices)
    assert not any("logprobs" in (r.body or {}) for r in fakes["openai"].chat_requests)
    assert "logprobs" not in stored_query(chunks[0].id).metadata


@pytest.mark.parametrize(
    "fields", [{"logprobs": True}, {"logprobs": True, "top_logprobs": 3}], ids=["lp", "top"]
)
def test_a_vendor_without_logprobs_refuses_them_naming_the_field(
    live_daphne_in_process, owner, fakes, fields
):
    vendor = "anthropic"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(live_daphne_in_process, owner[1]).chat.completions.create(
            model=VENDOR_MODELS[vendor], messages=MESSAGES, **fields
        )
    assert refused.value.code == "unsupported_parameter"
    assert refused.value.param == "logprobs"
    assert "openai" in refused.value.message and "logprobs" in refused.value.message
    assert not Query.objects.exists() and not fakes[vendor].chat_requests


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_logprobs": 3}, "top_logprobs"),  # without logprobs
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"n": MAX_CHOICES + 1}, "n"),
        ({"n": 0}, "n"),
        # More log probabilities than an answer can store (max_tokens x 21 > 65,536).
        ({"logprobs": True, "top_logprobs": 20, "max_tokens": 3200}, "top_logprobs"),
        ({"logprobs": True, "max_tokens": 32_000, "top_logprobs": 2}, "top_logprobs"),
    ],
)
def test_out_of_range_is_400_naming_the_field(live_daphne_in_process, owner, fields, param):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(live_daphne_in_process, owner[1]).chat.completions.create(
            model=VENDOR_MODELS["openai"], messages=MESSAGES, **fields
        )
    assert refused.value.param == param
    assert refused.value.type == "invalid_request_error"
    assert not Query.objects.exists()


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_n_choices_are_n_stored_questions(live_daphne_in_process, owner, fakes, vendor):
    completion = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS[vendor], messages=MESSAGES, n=3
    )
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    queries = list(Query.objects.filter(owner=owner[0]).order_by("timestamp"))
    assert len(queries) == 3
    assert all(q.status == Query.Status.COMPLETED for q in queries)
    assert completion.id in {f"chatcmpl-{q.pk}" for q in queries}
    assert sorted(c.message.content for c in completion.choices) == sorted(
        q.response for q in queries
    )
    assert completion.usage.prompt_tokens == sum(q.usage["input_tokens"] for q in queries)
    assert completion.usage.completion_tokens == sum(q.usage["output_tokens"] for q in queries)
    assert completion.usage.completion_tokens > 0


def test_n_choices_stream_merged_with_their_indexes(daphne, owner, fakes):
    fakes["openai"].chunk_count = 3
    chunks = list(
        sdk(daphne, owner[1]).chat.completions.create(
            model=VENDOR_MODELS["openai"],
            messages=MESSAGES,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finished: dict[int, str] = {}
    for chunk in chunks[:-1]:
        [choice] = chunk.choices
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason is not None:
            finished[choice.index] = choice.finish_reason
    assert finished == {0: "stop", 1: "stop"}
    assert len({chunk.id for chunk in chunks}) == 1
    queries = list(Query.objects.filter(owner=owner[0]))
    assert len(queries) == 2
    assert sorted(texts.values()) == sorted(q.response for q in queries)
    assert all(text for text in texts.values())
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == sum(q.usage["output_tokens"] for q in queries)


def test_n_choices_with_logprobs_each_have_theirs(live_daphne_in_process, owner, fakes):
    completion = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS["openai"], messages=MESSAGES, n=2, logprobs=True
    )
    for choice in completion.choices:
        assert choice.logprobs is not None and choice.logprobs.content
        tokens = "".join(token.token for token in choice.logprobs.content)
        assert tokens == choice.message.content


def test_a_limit_that_admits_one_of_n_is_the_error_and_leaves_nothing_running(
    live_daphne_in_process, make_owner, fakes
):
    user, key = make_owner("bob")
    api_key_set_limits(api_key=ApiKey.objects.get(owner=user), limits={"requests_per_minute": 1})
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(live_daphne_in_process, key).chat.completions.create(
            model=VENDOR_MODELS["openai"], messages=MESSAGES, n=3
        )
    assert refused.value.code == "rate_limited"
    deadline = time.monotonic() + 15
    while Query.objects.filter(owner=user, status__in=UNFINISHED).exists():
        assert time.monotonic() < deadline, "a started choice is still running"
        time.sleep(0.1)
    # The first was admitted and stopped (or had finished already); the rest never started.
    started = list(Query.objects.filter(owner=user))
    assert 1 <= len(started) < 3
    assert {q.status for q in started} <= {Query.Status.CANCELLED, Query.Status.COMPLETED}
