"""The real `openai` SDK, sync and async, streaming and not, against a live ASGI server and
the fake vendors: the wire format is OpenAI's, and every call is a recorded query run."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx2
import openai
import pytest

from queries.models import Query
from sessions.models import Session
from tests.fakes.server import echo_reply_text
from tests.openai_compat.clients import sdk, stored_query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MODEL = "openai/gpt-4o-mini"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour"},
    {"role": "assistant", "content": "Blue"},
    {"role": "user", "content": "Name another colour"},
]


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes (the servers were started with the same)."""


def async_sdk(server, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=30)


def _sent_messages(fake) -> list[tuple[str, str]]:
    body = fake.chat_requests[-1].body
    return [(m["role"], m["content"]) for m in body["messages"]]


def test_sync_json_answers_and_records_the_run(daphne, owner, fakes):
    completion = sdk(daphne, owner[1]).chat.completions.create(
        model=MODEL,
        messages=CONVERSATION,
        user="end-user-7",
        extra_headers={"X-Session-ID": "sess-json"},
        temperature=0.3,
        max_tokens=50,
    )
    answer = echo_reply_text("Name another colour")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.choices[0].message.content == answer
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    query = stored_query(completion.id)
    assert (query.owner_id, query.user_id, query.session_id) == (
        owner[0].pk,
        "end-user-7",
        "sess-json",
    )
    assert query.status == Query.Status.COMPLETED and query.response == answer
    assert query.usage["output_tokens"] == completion.usage.completion_tokens
    assert query.usage["cost_usd"] is not None  # priced: counts in usage and analytics
    assert (query.request["temperature"], query.request["max_tokens"]) == (0.3, 50)
    assert query.request["messages"] == CONVERSATION[:-1]
    assert Session.objects.filter(owner=owner[0], session_id="sess-json").exists()
    sent = _sent_messages(fakes["openai"])
    assert sent[0][0] == "system" and sent[0][1].startswith("You are terse.")
    assert sent[1:] == [(m["role"], m["content"]) for m in CONVERSATION[1:]]
    # No platform memory unless asked: no stored history or memory agent.
    assert "MemoryAgent" not in query.agents_used


def test_sync_stream_with_usage(daphne, owner, fakes):
    fakes["openai"].chunk_count = 5
    stream = sdk(daphne, owner[1]).chat.completions.create(
        model=MODEL,
        messages=CONVERSATION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == echo_reply_text("Name another colour")
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.object == "chat.completion.chunk" and c.id == last.id for c in chunks)
    query = stored_query(last.id)
    assert query.status == Query.Status.COMPLETED
    assert last.usage.completion_tokens == query.usage["output_tokens"] > 0
    assert query.user_id == "openai-api" and query.session_id.startswith("v1-")
    assert _sent_messages(fakes["openai"])[1:] == [
        (m["role"], m["content"]) for m in CONVERSATION[1:]
    ]


def test_stream_arrives_while_the_answer_is_written(live_daphne_in_process, owner, fakes):
    fakes["openai"].chunk_count = 4
    fakes["openai"].chunk_interval = 0.3
    stream = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}], stream=True
    )
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content and len(chunks) == 2:
            # Token by token, not buffered until the end: the run is still writing.
            assert stored_query(chunk.id).status == Query.Status.RUNNING
    # Without stream_options.include_usage: no usage chunk, as OpenAI does.
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == echo_reply_text(
        "Hello there"
    )


def test_async_sdk_json_and_stream(live_daphne_in_process, owner, fakes):
    client = async_sdk(live_daphne_in_process, owner[1])

    async def both():
        completion = await client.chat.completions.create(
            model="anthropic/claude-haiku-4-5",
            messages=CONVERSATION,
            metadata={"session_id": "sess-async", "use_memory": "true"},
        )
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
        return completion, chunks

    completion, chunks = asyncio.run(both())
    assert completion.choices[0].message.content == echo_reply_text("Name another colour")
    query = stored_query(completion.id)
    assert (query.model_provider, query.session_id) == ("anthropic", "sess-async")
    assert "MemoryAgent" in query.agents_used  # asked for with metadata.use_memory
    anthropic_body = fakes["anthropic"].chat_requests[-1].body
    assert "You are terse." in str(anthropic_body["system"])
    assert [m["role"] for m in anthropic_body["messages"]] == ["user", "assistant", "user"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == echo_reply_text("Stream me")
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_a_client_accepting_only_event_streams_gets_the_stream(live_daphne_in_process, owner):
    # Streaming clients (not the openai SDK) send Accept: text/event-stream; no 406.
    with httpx2.stream(
        "POST",
        f"{live_daphne_in_process.url}/v1/chat/completions",
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {owner[1]}", "Accept": "text/event-stream"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == echo_reply_text("Hi")


def test_a_failed_run_ends_the_stream_with_an_error_the_sdk_raises(
    live_daphne_in_process, owner, fakes
):
    fakes["openai"].fail_next("auth", times=5)  # the vendor refuses: not retryable
    stream = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    first = next(iter(stream))  # the role chunk: the stream had begun when the run failed
    with pytest.raises(openai.APIError) as failed:
        list(stream)
    assert failed.value.message
    assert stored_query(first.id).status == Query.Status.FAILED


def test_each_call_without_a_session_gets_its_own(live_daphne_in_process, owner):
    client = sdk(live_daphne_in_process, owner[1])
    sessions = set()
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}]
        )
        sessions.add(raw.headers["X-Session-ID"])
        assert stored_query(raw.parse().id).session_id == raw.headers["X-Session-ID"]
    assert len(sessions) == 2


def test_web_search_and_image_input(live_daphne_in_process, owner, fakes):
    client = sdk(live_daphne_in_process, owner[1])
    searched = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What happened today?"}],
        web_search_options={},
    )
    assert stored_query(searched.id).request["web_search"] is True
    assert "search" in fakes["openai"].chat_requests[-1].body["model"]
    looked = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            }
        ],
    )
    query = stored_query(looked.id)
    assert len(query.request["attachments"]) == 1 and "VisionAgent" in query.agents_used
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "And this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                }
            ],
        )
    assert "data URL" in refused.value.message


def test_models_lists_what_this_deployment_serves(live_daphne_in_process, owner):
    ids = [model.id for model in sdk(live_daphne_in_process, owner[1]).models.list()]
    assert MODEL in ids and "anthropic/claude-haiku-4-5" in ids
    assert {i.split("/")[0] for i in ids} == {
        "openai",
        "anthropic",
        "google",
        "openrouter",
        "local",
    }
    # Chat models of every keyed vendor; `local` only as the embedder (its chat model is off).
    assert [i for i in ids if i.startswith("local/")] == ["local/all-MiniLM-L6-v2"]


def test_sdk_errors(live_daphne_in_process, owner):
    with pytest.raises(openai.AuthenticationError):
        sdk(live_daphne_in_process, "llmp_wrong-key-0123456789").models.list()
    client = sdk(live_daphne_in_process, owner[1])
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="openai/no-such-model", messages=[{"role": "user", "content": "Hi"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "assistant", "content": "x"}]
        )
    assert bad.value.param == "messages"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-ada-002", input="x")


def test_embeddings_with_the_platforms_embedder(live_daphne_in_process, owner):
    client = sdk(live_daphne_in_process, owner[1])
    # The SDK asks for base64 unless told; both encodings decode to the same vectors.
    packed = client.embeddings.create(model="all-MiniLM-L6-v2", input=["red apple", "green pear"])
    plain = client.embeddings.create(
        model="local/all-MiniLM-L6-v2", input="red apple", encoding_format="float"
    )
    assert [item.index for item in packed.data] == [0, 1]
    assert all(len(item.embedding) == 384 for item in packed.data)
    assert len(plain.data) == 1
    assert plain.data[0].embedding == pytest.approx(packed.data[0].embedding, abs=1e-6)
    assert packed.data[0].embedding != pytest.approx(packed.data[1].embedding, abs=1e-3)
    assert packed.model == "all-MiniLM-L6-v2"


def test_memory_scope_session_recalls_only_this_sessions_questions(daphne, owner, fakes):
    client = sdk(daphne, owner[1])

    def ask(text: str, session: str, scope: str) -> None:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": text}],
            metadata={"session_id": session, "use_memory": "true", "memory_scope": scope},
        )

    ask("How do I reset the admin password of my wifi router?", "elsewhere", "user")
    ask("Which admin password did the technician set on my router?", "here", "user")
    for filler in ("Bake bread with flour", "Plant tomatoes in spring", "Tune a guitar"):
        ask(filler, "here", "user")
    ask("I forgot my router's admin password, what now?", "here", "session")
    prompt = json.dumps(fakes["openai"].chat_requests[-1].body)
    assert "technician" in prompt and "reset the admin password" not in prompt
    ask("I forgot my router's admin password, what now?", "here", "user")
    assert "reset the admin password" in json.dumps(fakes["openai"].chat_requests[-1].body)
