"""A question reserves everything it will send, so parallel questions cannot overrun a
budget by more than one question's reservation; accounts (the chat UI, no key) have the
same limits and budgets.

The outcome test fires 30 parallel questions with long histories through the real
``openai`` SDK at a live server, on the embedded default and on Redis + Celery, and reads
what was spent from /api/v1/usage. The rest pins each part of the reservation to the
engine's own numbers, and the rules of admission and settlement.

Over 500 lines on purpose: every part of the reservation is pinned here beside the
outcome test that depends on all of them.
"""

from __future__ import annotations

import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx2
import openai
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.sync.client import connect

from agents import coordinator, documents, memory, vision, writer
from agents.providers.base import Usage
from agents.providers.pricing import IMAGE_INPUT_TOKENS, cost_for, image_input_tokens
from files.models import File
from llmplatform.core import quotas
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import AccountLimits, ApiKey
from llmplatform.core.quotas import quota_admit, quota_settle, quota_windows
from llmplatform.core.services import api_key_set_limits
from openai_compat.serializers import OpenAIChatCompletionRequestSerializer
from queries.admission import (
    MESSAGE_OVERHEAD_TOKENS,
    PRODUCT_CARD_TOKENS,
    SECTION_OVERHEAD_TOKENS,
    TOOL_USE_OVERHEAD_TOKENS,
    question_reservation,
)
from queries.models import Query
from queries.question import QuestionParams
from queries.serializers import MAX_ANSWER_TOKENS, MAX_QUERY_CHARS, QueryRequestSerializer
from queries.services import SUMMARY_MAX_TOKENS
from queries.start import query_start
from queries.streams import query_wait
from tests.openai_compat.clients import sdk

LONG_EARLIER_MESSAGE = "word " * 1600  # 8,000 characters
QUESTION = "What did I just say?"  # the rules are sure: a chat, no classifier call


def tokens(text: str) -> int:
    """What the reservation counts a text as: 4 characters a token, rounded up."""
    return math.ceil(len(text) / 4)


def reserve(**overrides):
    params = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "text": QUESTION,
        "mode": "chat",
        "max_tokens": 1,
        "client_messages": None,
        "system_prompt": None,
        "use_memory": False,
        "use_documents": False,
        "images": 0,
        **overrides,
    }
    return question_reservation(**params)


# ----- the reservation: every part, from the engine's own numbers -----


def test_a_bare_question_reserves_the_system_prompt_the_style_the_question_and_the_answer():
    reservation = reserve(max_tokens=700)
    [call] = reservation.calls
    assert call.name == "writer"
    assert call.parts == {
        "system_prompt": tokens(writer.BASE_PROMPT),
        "provider_style": tokens(writer.PROVIDER_STYLE["openai"]),
        "context_headings": 0,
        "question": tokens(QUESTION),
        "messages": 2 * MESSAGE_OVERHEAD_TOKENS,  # the system message and the question
    }
    assert call.output_tokens == 700
    assert reservation.tokens == sum(call.parts.values()) + 700


def test_the_clients_messages_and_system_prompt_are_reserved_as_sent():
    messages = [
        {"role": "system", "content": "You are terse." * 10},
        {"role": "user", "content": LONG_EARLIER_MESSAGE},
        {"role": "assistant", "content": "Noted."},
    ]
    reservation = reserve(client_messages=messages, system_prompt="You are terse." * 10)
    [call] = reservation.calls
    assert call.parts["system_prompt"] == tokens("You are terse." * 10)
    assert call.parts["client_messages"] == 2000 + tokens("Noted.")
    assert call.parts["messages"] == 4 * MESSAGE_OVERHEAD_TOKENS
    assert "history" not in call.parts  # the client's turns replace the stored history


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city. " * 20,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
WEATHER_CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris " * 50})},
    }
]


def test_tools_and_tool_turns_are_reserved_with_the_vendors_tool_prompt():
    earlier = [
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": "", "tool_calls": WEATHER_CALLS},
        {"role": "tool", "content": "sunny " * 100, "tool_call_id": "call_1"},
    ]
    after = [
        {"role": "assistant", "content": "Checking.", "tool_calls": WEATHER_CALLS},
        {"role": "tool", "content": "rain " * 200, "tool_call_id": "call_1"},
    ]
    reservation = reserve(client_messages=earlier, tools=[WEATHER_TOOL], tool_turns=after)
    [call] = reservation.calls
    calls_json = tokens(json.dumps(WEATHER_CALLS))
    assert call.parts["tools"] == tokens(json.dumps([WEATHER_TOOL])) + TOOL_USE_OVERHEAD_TOKENS
    assert call.parts["client_messages"] == (
        tokens("Weather in Rome?") + calls_json + tokens("sunny " * 100)
    )
    assert call.parts["tool_turns"] == tokens("Checking.") + calls_json + tokens("rain " * 200)
    # The system message, three earlier turns, the question and two tool turns.
    assert call.parts["messages"] == 7 * MESSAGE_OVERHEAD_TOKENS


def test_a_v1_tool_loop_reserves_its_tools_and_tool_turns(api, owner, in_process, held_clock):
    limit(owner, tokens_per_day=10**9, usd_per_month=Decimal("1000"))
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": WEATHER_CALLS},
        {"role": "tool", "content": "rain " * 200, "tool_call_id": "call_1"},
    ]
    answered = api.post(
        "/v1/chat/completions",
        {"model": "openai/gpt-4o-mini", "messages": messages, "tools": [WEATHER_TOOL],
         "max_tokens": 10},
        format="json",
    )  # fmt: skip
    assert answered.status_code == 200, answered.content
    query = Query.objects.get()
    budgets = query.request["quota"]["budgets"]
    reserved = {b["counter"].split(":")[1]: b["reserved"] for b in budgets}
    expected = reserve(
        client_messages=[],
        tools=[WEATHER_TOOL],
        tool_turns=query.request["tool_turns"],
        max_tokens=10,
    )
    assert expected.call("writer").parts["tool_turns"] > 250
    assert reserved["tok"] == expected.tokens
    assert reserved["usd"] == round(expected.usd * quotas.MICRO_USD)


def test_an_experiments_system_prompt_replaces_the_platforms():
    [call] = reserve(system_prompt="x" * 4001).calls
    assert call.parts["system_prompt"] == 1001


def test_memory_reserves_the_stored_history_the_summary_and_the_related_questions():
    turns = [("q" * 400, "a" * 4000), ("q" * 41, "a" * 2)]
    [call] = reserve(use_memory=True, history=turns).calls
    assert call.parts["history"] == 100 + 1000 + 11 + 1
    assert call.parts["messages"] == (2 + 2 * len(turns)) * MESSAGE_OVERHEAD_TOKENS


def test_unknown_stored_history_reserves_its_bound():
    [call] = reserve(use_memory=True).calls
    longest_question = MAX_QUERY_CHARS // 4
    assert call.parts["history"] == memory.HISTORY_TURNS * (longest_question + MAX_ANSWER_TOKENS)
    assert call.parts["summary"] == SUMMARY_MAX_TOKENS
    item = len("Q: \nA: \n") + MAX_QUERY_CHARS + memory.MEMORY_TEXT_LIMIT
    assert call.parts["memory"] == memory.TOP_K * math.ceil(item / 4)
    assert call.parts["context_headings"] == 2 * SECTION_OVERHEAD_TOKENS
    assert call.parts["messages"] == (2 + 2 * memory.HISTORY_TURNS) * MESSAGE_OVERHEAD_TOKENS


def test_documents_reserve_the_context_budget_and_each_passages_header():
    [call] = reserve(use_documents=True, use_memory=True).calls
    filename = File._meta.get_field("filename").max_length
    header = len(f"[{documents.TOP_K}] , page 99999:\n\n") + filename
    intro = writer.DOCUMENTS_INTRO
    assert call.parts["memory_and_passages"] == (
        documents.CONTEXT_BUDGET_TOKENS + documents.TOP_K * math.ceil(header / 4) + tokens(intro)
    )
    assert "memory" not in call.parts  # memory is fitted into the same budget


def test_images_reserve_a_vision_call_at_the_vendors_image_price_and_its_notes():
    reservation = reserve(provider="anthropic", model="claude-3-5-haiku", images=2, max_tokens=900)
    vision_call, writer_call = reservation.calls
    assert vision_call.name == "vision"
    assert vision_call.parts["images"] == 2 * IMAGE_INPUT_TOKENS["anthropic"] == 3200
    assert vision_call.parts["prompt"] == tokens(vision.VISION_PROMPT.format(question=QUESTION))
    assert vision_call.output_tokens == vision.VISION_MAX_TOKENS  # under max_tokens
    assert writer_call.parts["vision_notes"] == vision.VISION_MAX_TOKENS
    assert reserve(images=1, max_tokens=100).calls[0].output_tokens == 100


def test_each_vendor_has_an_image_price_and_an_unknown_one_gets_the_largest():
    assert image_input_tokens("openai") == 85 + 8 * 170
    assert image_input_tokens("openrouter") == max(IMAGE_INPUT_TOKENS.values())


def test_an_unsure_question_reserves_the_classifier_call():
    text = "Recommend something"  # a wish to buy but no product: the model classifies
    assert coordinator.classify_intent(text=text, mode="chat", has_images=False) == (
        "chat",
        False,
    )
    reservation = reserve(text=text)
    classifier, writer_call = reservation.calls
    assert classifier.name == "classifier"
    assert classifier.parts == {
        "prompt": tokens(coordinator.CLASSIFIER_PROMPT),
        "question": tokens(text),
        "messages": 2 * MESSAGE_OVERHEAD_TOKENS,
    }
    assert classifier.output_tokens == coordinator.CLASSIFIER_MAX_TOKENS == 5
    # It may end in a product search: the cards found are reserved for the writer.
    assert (
        writer_call.parts["products"] == settings.PRODUCT_SEARCH_MAX_RESULTS * PRODUCT_CARD_TOKENS
    )


def test_the_cost_is_every_call_at_the_models_price():
    reservation = reserve(text="Recommend something", images=1, model="gpt-4o", max_tokens=50)
    expected = sum(
        cost_for(
            "openai", "gpt-4o", Usage(input_tokens=c.input_tokens, output_tokens=c.output_tokens)
        )
        for c in reservation.calls
    )
    assert [c.name for c in reservation.calls] == ["vision", "writer"]  # images: sure
    assert reservation.usd == pytest.approx(expected, abs=1e-12)
    assert reserve(model="not-in-the-price-table").usd is None


def test_the_bounds_are_the_requests_own_limits():
    # The history bound assumes no stored answer is longer than a request may ask for.
    assert QueryRequestSerializer().fields["max_tokens"].max_value == MAX_ANSWER_TOKENS
    assert QueryRequestSerializer().fields["query"].max_length == MAX_QUERY_CHARS
    v1 = OpenAIChatCompletionRequestSerializer().fields
    assert v1["max_tokens"].max_value <= MAX_ANSWER_TOKENS
    assert v1["max_completion_tokens"].max_value <= MAX_ANSWER_TOKENS


# ----- admission through the run -----

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def held_clock(monkeypatch):
    """Windows read from a clock held mid-minute: a test never straddles two windows."""
    held = datetime.now(UTC).replace(second=30, microsecond=0)
    monkeypatch.setattr(quotas, "quota_now", lambda: held)
    return held


def limit(owner, **limits) -> ApiKey:
    return api_key_set_limits(api_key=ApiKey.objects.get(owner=owner[0]), limits=limits)


def used(api, window: str) -> float:
    return api.get("/api/v1/usage").json()["limits"][window]["used"]


def test_the_run_reserves_the_stored_history_of_a_question_with_memory(
    api, owner, in_process, held_clock
):
    limit(owner, tokens_per_day=10**9, usd_per_month=Decimal("1000"))

    def ask(text: str) -> Query:
        answer = api.post(
            "/api/v1/query/",
            {
                "user_id": "u",
                "session_id": "s",
                "query": text,
                "model_name": "gpt-4o-mini",
                "model_provider": "openai",
                "max_tokens": 10,
            },
            format="json",
        ).json()
        return Query.objects.get(pk=answer["query_id"])

    first = ask(QUESTION)
    second = ask("And the next step? " * 40)
    reserved = {
        b["counter"].split(":")[1]: b["reserved"] for b in second.request["quota"]["budgets"]
    }
    # The first turn, as stored, is the history the memory agent adds to the second.
    expected = reserve(
        text=second.query,
        use_memory=True,
        max_tokens=10,
        history=[(first.query, first.response)],
    )
    assert expected.call("writer").parts["history"] == tokens(first.query) + tokens(first.response)
    assert reserved["tok"] == expected.tokens
    assert reserved["usd"] == round(expected.usd * quotas.MICRO_USD)


def test_an_attachment_refused_after_admission_leaves_the_budget_unchanged(
    api, owner, in_process, held_clock
):
    limit(owner, tokens_per_day=10**9, usd_per_month=Decimal("1000"))
    before = used(api, "tokens_per_day"), used(api, "usd_per_month")
    refused = api.post(
        "/api/v1/query/",
        {
            "user_id": "u",
            "session_id": "s",
            "query": QUESTION,
            "model_provider": "openai",
            "model_name": "gpt-4o-mini",
            "attachments": ["data:image/png;base64,not*base64"],
        },
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_attachment"
    assert (used(api, "tokens_per_day"), used(api, "usd_per_month")) == before == (0, 0.0)
    assert not Query.objects.exists()


# ----- the rules of admission -----


def test_a_budget_used_up_exactly_refuses_the_next_question(owner, held_clock):
    api_key = limit(owner, tokens_per_day=1000)
    reservation = quota_admit(api_key=api_key, user_id="u", tokens_estimate=400, usd_estimate=0)
    quota_settle(reservation, run_id="q1", tokens=1000, usd=0.0)  # exactly the budget
    with pytest.raises(ApplicationError) as refused:
        quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0)
    assert refused.value.code == "budget_exceeded"


def test_tokens_per_day_start_over_the_next_day_not_the_next_month(owner):
    api_key = limit(owner, tokens_per_day=100)
    day = datetime(2026, 11, 10, 12, 0, 30, tzinfo=UTC)
    quota_admit(api_key=api_key, user_id="u", tokens_estimate=100, usd_estimate=0, now=day)
    with pytest.raises(ApplicationError):
        quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0, now=day)
    next_day = day + timedelta(days=1)  # the same month
    quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0, now=next_day)
    [tokens_today] = [
        w for w in quota_windows(api_key=api_key, now=next_day) if w.name == "tokens_per_day"
    ]
    assert tokens_today.used == 1


def test_parallel_admissions_stop_at_the_first_reservation_past_the_budget(owner, held_clock):
    api_key = limit(owner, tokens_per_day=500)
    start = threading.Barrier(20)

    def one(_: int) -> bool:
        start.wait(timeout=30)
        try:
            quota_admit(api_key=api_key, user_id="u", tokens_estimate=2100, usd_estimate=0)
        except ApplicationError:
            return False
        return True

    with ThreadPoolExecutor(20) as pool:
        admitted = list(pool.map(one, range(20)))
    assert admitted.count(True) == 1  # 0 + 2100 runs; every other starts at >= 500
    [window] = [w for w in quota_windows(api_key=api_key) if w.name == "tokens_per_day"]
    assert window.used == 2100


# ----- accounts: the chat UI signs in without a key -----


def user(name: str):
    return get_user_model().objects.create_user(name, password=f"pw-{name}-long-enough")


def test_an_account_is_admitted_against_its_own_limits_and_shows_its_windows(held_clock):
    ann = user("ann")
    AccountLimits.objects.create(user=ann, requests_per_minute=1, tokens_per_day=5000)
    quota_admit(api_key=None, account=ann, user_id="ann", tokens_estimate=7, usd_estimate=0.5)
    with pytest.raises(ApplicationError) as refused:
        quota_admit(api_key=None, account=ann, user_id="ann", tokens_estimate=7, usd_estimate=0)
    assert refused.value.code == "rate_limited"
    assert refused.value.extra["scope"] == "account"
    windows = {w.name: w for w in quota_windows(api_key=None, account=ann)}
    assert set(windows) == {"requests_per_minute", "tokens_per_day", "usd_per_month"}
    assert all(isinstance(w, quotas.Window) and w.scope == "account" for w in windows.values())
    assert (windows["requests_per_minute"].used, windows["requests_per_minute"].limit) == (1, 1)
    assert (windows["tokens_per_day"].used, windows["tokens_per_day"].remaining) == (7, 4993)
    assert windows["usd_per_month"].used == Decimal("0.5")
    assert windows["usd_per_month"].limit is None
    # Another account counts apart.
    assert quota_windows(account=user("bob"))[0].used == 0


def test_a_question_without_a_key_counts_against_the_owners_account(in_process, held_clock):
    eve = user("eve")
    AccountLimits.objects.create(user=eve, tokens_per_day=1)
    params = QuestionParams(
        user_id="eve", session_id="s", query=QUESTION, use_memory=False, model_provider="openai"
    )
    first = query_start(owner=eve, params=params)
    query_wait(query=first)  # settled to what it used: more than the budget
    with pytest.raises(ApplicationError) as refused:
        query_start(owner=eve, params=params)
    assert (refused.value.code, refused.value.extra["scope"]) == ("budget_exceeded", "account")
    [tokens_today] = [w for w in quota_windows(account=eve) if w.name == "tokens_per_day"]
    first.refresh_from_db()
    assert tokens_today.used == first.usage["input_tokens"] + first.usage["output_tokens"] > 1
    assert first.request["quota"]["account_id"] == str(eve.pk)


def test_an_account_without_its_own_limits_gets_the_defaults(settings, held_clock):
    settings.DEFAULT_ACCOUNT_RPM = 2
    settings.DEFAULT_ACCOUNT_TOKENS_PER_DAY = 300
    settings.DEFAULT_ACCOUNT_USD_PER_MONTH = 1.5
    cy = user("cy")
    windows = {w.name: w.limit for w in quota_windows(account=cy)}
    assert windows == {"requests_per_minute": 2, "tokens_per_day": 300, "usd_per_month": 1.5}
    AccountLimits.objects.create(user=cy, tokens_per_day=10)  # its own wins where set
    windows = {w.name: w.limit for w in quota_windows(account=cy)}
    assert windows == {"requests_per_minute": 2, "tokens_per_day": 10, "usd_per_month": 1.5}


def test_admin_lists_account_limits_with_their_usage(admin_client, held_clock):
    dee = user("dee")
    limits = AccountLimits.objects.create(user=dee, tokens_per_day=50_000)
    quota_admit(api_key=None, account=dee, user_id="dee", tokens_estimate=42, usd_estimate=0)
    listing = admin_client.get("/admin/core/accountlimits/").content.decode()
    assert "42 tokens today (of 50000)" in listing
    page = admin_client.get(f"/admin/core/accountlimits/{limits.pk}/change/")
    assert page.status_code == 200
    assert admin_client.get("/admin/core/accountlimits/add/").status_code == 200


# ----- live: the real SDK, 30 in parallel, embedded default and Redis + Celery -----

PARALLEL = 30


def fire(server, key: str, model: str) -> tuple[int, int]:
    """PARALLEL questions at once, each after an 8,000-character message, max_tokens 1;
    (answered, refused with 429)."""
    start = threading.Barrier(PARALLEL)

    def one(index: int) -> str:
        client = sdk(server, key, timeout=60)
        start.wait(timeout=60)
        try:
            client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "user", "content": LONG_EARLIER_MESSAGE},
                    {"role": "assistant", "content": "Noted."},
                    {"role": "user", "content": QUESTION},
                ],
                max_tokens=1,
                extra_headers={"X-Session-ID": f"parallel-{index}"},
            )
        except openai.RateLimitError as exc:
            return f"refused {exc.body['code']}"
        return "answered"

    with ThreadPoolExecutor(PARALLEL) as pool:
        outcomes = list(pool.map(one, range(PARALLEL)))
    return outcomes.count("answered"), outcomes.count("refused budget_exceeded")


def largest_reservation(owner, kind: str) -> int:
    return max(
        budget["reserved"]
        for query in Query.objects.filter(owner=owner[0])
        for budget in query.request["quota"]["budgets"]
        if budget["counter"].startswith(f"quota:{kind}:")
    )


def usage_of(server, key: str) -> dict:
    response = httpx2.get(
        f"{server.url}/api/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200
    return response.json()["limits"]


@pytest.mark.slow
def test_parallel_questions_with_long_histories_stay_within_a_token_budget_plus_one(
    daphne, owner, vendor_settings
):
    limit(owner, tokens_per_day=500)
    answered, refused = fire(daphne, owner[1], "openai/gpt-4o-mini")
    assert answered >= 1 and refused >= 1 and answered + refused == PARALLEL
    spent = usage_of(daphne, owner[1])["tokens_per_day"]["used"]
    one_reservation = largest_reservation(owner, "tok")
    assert spent <= 500 + one_reservation
    assert one_reservation >= 2000  # the earlier message counts


@pytest.mark.slow
def test_parallel_questions_with_long_histories_stay_within_a_usd_budget_plus_one(
    daphne, owner, vendor_settings
):
    limit(owner, usd_per_month=Decimal("0.01"))
    answered, refused = fire(daphne, owner[1], "openai/gpt-4o")
    assert answered >= 1 and refused >= 1 and answered + refused == PARALLEL
    spent = usage_of(daphne, owner[1])["usd_per_month"]["used"]
    one_reservation = largest_reservation(owner, "usd") / quotas.MICRO_USD
    assert spent <= 0.01 + one_reservation


# ----- live: the chat page's questions count against the account -----


def browser_session(name: str) -> tuple[object, str]:
    account = user(name)
    client = Client()
    assert client.login(username=name, password=f"pw-{name}-long-enough")
    return (
        account,
        f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}",
    )


def until_done(ws) -> list[dict]:
    events = []
    while True:
        events.append(json.loads(ws.recv(timeout=30)))
        if events[-1]["type"] in ("done", "error"):
            return events


@pytest.mark.slow
def test_the_chat_page_is_refused_with_429_once_the_accounts_budget_is_spent(
    daphne, vendor_settings, fakes
):
    account, cookie = browser_session("erin")
    AccountLimits.objects.create(user=account, tokens_per_day=1)
    question = {
        "type": "query",
        "user_id": "erin",
        "session_id": "chat-1",
        "query": QUESTION,
        "use_memory": False,
        "model_provider": "openai",
    }
    url = daphne.url.replace("http", "ws") + "/ws/chat/"
    with connect(url, additional_headers={"Cookie": cookie}, origin=daphne.url) as ws:
        ws.send(json.dumps(question))
        assert until_done(ws)[-1]["type"] == "done"  # the budget was not used up yet
        asked = len(fakes["openai"].chat_requests)
        ws.send(json.dumps(question))
        refused = until_done(ws)[-1]
    assert refused["type"] == "error"
    assert refused["error"]["code"] == "budget_exceeded"
    assert refused["error"]["details"]["scope"] == "account"
    assert len(fakes["openai"].chat_requests) == asked  # refused before any vendor call
    assert Query.objects.filter(owner=account).count() == 1


def test_a_strict_answer_reserves_the_writer_twice():
    # The writer asks once more for a strict json_schema answer that does not validate.
    once = reserve(max_tokens=300)
    twice = reserve(max_tokens=300, strict_answer=True)
    [writer] = once.calls
    assert [call.name for call in twice.calls] == ["writer", "writer"]
    assert twice.tokens == 2 * once.tokens == 2 * (sum(writer.parts.values()) + 300)
