"""Per-key limits and budgets: questions per minute, tokens per day, USD per month, and
the per-end-user limits inside a key, on REST, SSE and the websocket, refused before any
provider call, counted atomically, shown at /api/v1/usage and in admin."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from channels.routing import URLRouter
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.urls import path

from llmplatform.core import quotas
from llmplatform.core.errors import ApplicationError
from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_admit, quota_settle, quota_windows
from llmplatform.core.services import api_key_set_limits
from queries.consumers import ChatConsumer, QueryStreamConsumer
from queries.models import Query
from queries.run import queries_sweep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("in_process")]

REDIS_CACHE = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/0",
}


@pytest.fixture(autouse=True)
def _mid_minute(monkeypatch):
    """Windows are read from a clock held at the middle of a minute: a test's questions
    never straddle two windows."""
    held = datetime.now(UTC).replace(second=30, microsecond=0)
    monkeypatch.setattr(quotas, "quota_now", lambda: held)


def ask(api, text="Hi there", user_id="u1", **extra):
    body = {"user_id": user_id, "session_id": "s1", "query": text, "use_memory": False, **extra}
    return api.post("/api/v1/query/", body, format="json")


def seconds_left_of(period: str) -> int:
    """Seconds from the held clock to the end of its UTC day or month."""
    now = quotas.quota_now()
    day_ends = now.replace(hour=0, minute=0, second=0) + timedelta(days=1)
    ends = (
        day_ends
        if period == "day"
        else (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
    )
    return int((ends - now).total_seconds())


def key_of(owner) -> ApiKey:
    return ApiKey.objects.get(owner=owner[0])


def limit(owner, **limits) -> ApiKey:
    return api_key_set_limits(api_key=key_of(owner), limits=limits)


def chat_calls(fakes) -> int:
    return len(fakes["openai"].chat_requests)


# A refused question's own text: no vendor request may carry it. (Counting every vendor
# request instead is racy: the second answer of a session starts its summary, a vendor
# call, on the in-process dispatcher's background thread, which may land at any time;
# that made the first test below fail about 2 runs in 6.)
REFUSED_TEXT = "A question over the limit, never sent"


def vendor_requests_about(fakes, text: str) -> list:
    return [
        request
        for fake in fakes.values()
        for request in fake.requests
        if text in json.dumps(request.body)
    ]


# ----- questions per minute -----


def test_over_the_rate_limit_is_a_429_before_any_provider_call(api, owner, in_process):
    limit(owner, requests_per_minute=2)
    first = ask(api, model_provider="openai")
    assert first.status_code == 200
    assert first["RateLimit-Limit"] == "2"
    assert first["RateLimit-Remaining"] == "1"
    assert first["RateLimit-Reset"] == "30"
    assert ask(api, model_provider="openai").status_code == 200
    stored = Query.objects.count()

    refused = ask(api, REFUSED_TEXT, model_provider="openai")

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["window"] == "requests_per_minute"
    assert error["details"]["scope"] == "key"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["RateLimit-Remaining"] == "0"
    # Refused before anything was stored or any vendor was asked.
    assert not vendor_requests_about(in_process, REFUSED_TEXT)
    assert Query.objects.count() == stored


def test_the_minute_window_starts_over(owner):
    api_key = limit(owner, requests_per_minute=1)
    now = datetime(2026, 11, 30, 12, 0, 30, tzinfo=UTC)
    quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0, now=now)
    with pytest.raises(ApplicationError) as refused:
        quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0, now=now)
    assert refused.value.extra["retry_after"] == 30
    later = now + timedelta(seconds=31)
    quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0, now=later)


def test_a_refused_question_does_not_count(owner):
    api_key = limit(owner, requests_per_minute=1)
    quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0)
    for _ in range(3):
        with pytest.raises(ApplicationError):
            quota_admit(api_key=api_key, user_id="u", tokens_estimate=1, usd_estimate=0)
    [rpm] = [w for w in quota_windows(api_key=api_key) if w.name == "requests_per_minute"]
    assert rpm.used == 1


def test_an_end_user_limit_applies_inside_the_key(api, owner):
    limit(owner, user_requests_per_minute=1)
    assert ask(api, user_id="ann").status_code == 200
    refused = ask(api, user_id="ann")
    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["scope"] == "user"
    assert ask(api, user_id="bob").status_code == 200  # another end user of the same key


def test_another_key_is_not_limited_by_this_one(api, other_api, owner):
    limit(owner, requests_per_minute=1)
    assert ask(api).status_code == 200
    assert ask(api).status_code == 429
    assert ask(other_api).status_code == 200


def test_the_default_from_settings_applies_to_keys_without_their_own(api, owner, settings):
    settings.DEFAULT_KEY_RPM = 1
    assert ask(api).status_code == 200
    assert ask(api).status_code == 429
    limit(owner, requests_per_minute=5)  # a key's own limit wins over the default
    assert ask(api).status_code == 200


def test_no_limit_means_no_rate_limit_headers(api):
    response = ask(api)
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response


# ----- budgets -----


def test_tokens_are_settled_to_what_the_answer_used_then_the_budget_refuses(api, owner):
    limit(owner, tokens_per_day=1)
    first = ask(api, model_provider="openai")
    assert first.status_code == 200  # the budget was not used up yet: it runs
    used = first.json()["usage"]["total_tokens"]
    assert used > 1

    usage = api.get("/api/v1/usage").json()
    assert usage["limits"]["tokens_per_day"]["used"] == used  # the estimate was replaced
    assert usage["limits"]["tokens_per_day"]["remaining"] == 0

    refused = ask(api, model_provider="openai")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert error["details"]["window"] == "tokens_per_day"
    retry_after = int(refused["Retry-After"])
    assert 0 < retry_after <= 24 * 3600


def test_the_monthly_usd_budget_counts_what_answers_cost(api, owner):
    limit(owner, usd_per_month=Decimal("5.00"))
    body = ask(api, model_provider="openai", model_name="gpt-4o-mini").json()
    cost = body["usage"]["cost_usd"]
    assert cost > 0
    window = api.get("/api/v1/usage").json()["limits"]["usd_per_month"]
    assert window["limit"] == 5.0
    assert window["used"] == pytest.approx(cost, abs=1e-6)

    limit(owner, usd_per_month=Decimal("0.00"))
    refused = ask(api, model_provider="openai", model_name="gpt-4o-mini")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    # RateLimit-* describe the per-minute limit only, and this key has none.
    assert "RateLimit-Limit" not in refused
    assert int(refused["Retry-After"]) == seconds_left_of("month")


def test_a_budget_refusal_describes_the_per_minute_limit_in_its_rate_limit_headers(api, owner):
    limit(owner, requests_per_minute=5, tokens_per_day=1)
    assert ask(api, model_provider="openai").status_code == 200  # uses the budget up

    refused = ask(api, model_provider="openai")

    assert refused.status_code == 429
    assert refused.json()["error"]["details"]["window"] == "tokens_per_day"
    # The per-minute limit: 5, one question counted (the refused one is not), the
    # minute ends in 30 s (the clock is held at :30); Retry-After is the budget's (the day).
    assert refused["RateLimit-Limit"] == "5"
    assert refused["RateLimit-Remaining"] == "4"
    assert refused["RateLimit-Reset"] == "30"
    assert int(refused["Retry-After"]) == seconds_left_of("day")


@pytest.mark.parametrize("backend", ["redis", "local"])
def test_concurrent_questions_overshoot_a_budget_by_at_most_one(owner, settings, backend):
    if backend == "redis":
        settings.CACHES = {
            **settings.CACHES,
            "limits": {**REDIS_CACHE, "KEY_PREFIX": f"t-budget-{uuid.uuid4().hex}"},
        }
    api_key = limit(owner, tokens_per_day=1000)
    admitted: list[dict] = []
    refused: list[Exception] = []
    start = threading.Barrier(12)

    def one() -> None:
        start.wait()
        try:
            admitted.append(
                quota_admit(api_key=api_key, user_id="u", tokens_estimate=600, usd_estimate=0)
            )
        except Exception as exc:
            refused.append(exc)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 0 + 600 fits; 600 + 600 starts below the budget, so it runs; nothing more does.
    assert len(admitted) == 2
    assert len(refused) == 10
    assert all(exc.code == "budget_exceeded" for exc in refused)
    [tokens] = [w for w in quota_windows(api_key=api_key) if w.name == "tokens_per_day"]
    assert tokens.used == 1200


def test_a_reservation_settles_once(owner):
    api_key = limit(owner, tokens_per_day=10_000)
    reservation = quota_admit(api_key=api_key, user_id="u", tokens_estimate=500, usd_estimate=0)
    assert quota_settle(reservation, run_id="q1", tokens=120, usd=0.0)
    assert not quota_settle(reservation, run_id="q1", tokens=120, usd=0.0)
    [tokens] = [w for w in quota_windows(api_key=api_key) if w.name == "tokens_per_day"]
    assert tokens.used == 120


def test_the_sweeper_releases_the_reservation_of_a_run_whose_worker_died(api, owner, settings):
    api_key = limit(owner, tokens_per_day=10_000)
    reservation = quota_admit(api_key=api_key, user_id="u", tokens_estimate=700, usd_estimate=0)
    Query.objects.create(
        owner=owner[0],
        user_id="u",
        session_id="s",
        query="q",
        model_provider="openai",
        model_name="m",
        status=Query.Status.RUNNING,
        heartbeat_at=datetime.now(UTC) - timedelta(days=1),
        request={"quota": reservation},
    )
    assert queries_sweep() == 1
    [tokens] = [w for w in quota_windows(api_key=api_key) if w.name == "tokens_per_day"]
    assert tokens.used == 0


# ----- every transport -----

http_app = URLRouter([path("api/v1/query/stream", QueryStreamConsumer.as_asgi())])
ws_app = URLRouter([path("ws/chat/", ChatConsumer.as_asgi())])


def _stream(key: str) -> dict:
    body = json.dumps({"user_id": "u", "session_id": "s", "query": "hi", "use_memory": False})
    communicator = HttpCommunicator(
        http_app,
        "POST",
        "/api/v1/query/stream",
        body=body.encode(),
        headers=[(b"authorization", f"Bearer {key}".encode())],
    )
    return asyncio.run(communicator.get_response(timeout=20))


def test_sse_refuses_over_the_limit_before_streaming(owner, in_process):
    limit(owner, requests_per_minute=1)
    first = _stream(owner[1])
    assert first["status"] == 200
    assert dict(first["headers"])[b"RateLimit-Remaining"] == b"0"
    calls = chat_calls(in_process) + len(in_process["anthropic"].chat_requests)

    refused = _stream(owner[1])

    assert refused["status"] == 429
    headers = dict(refused["headers"])
    assert int(headers[b"Retry-After"]) >= 1
    assert headers[b"RateLimit-Limit"] == b"1"
    assert json.loads(refused["body"])["error"]["code"] == "rate_limited"
    assert chat_calls(in_process) + len(in_process["anthropic"].chat_requests) == calls


async def _ws_questions(key: str, count: int) -> list[dict]:
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"host", b"127.0.0.1:8000")]
    communicator = WebsocketCommunicator(ws_app, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    replies = []
    message = {"type": "query", "user_id": "u", "session_id": "s", "query": "hi"}
    for _ in range(count):
        await communicator.send_to(text_data=json.dumps({**message, "use_memory": False}))
        while True:
            event = await communicator.receive_json_from(timeout=20)
            if event["type"] in ("done", "error"):
                replies.append(event)
                break
    await communicator.disconnect()
    return replies


def test_the_websocket_answers_an_error_event_over_the_limit(owner):
    limit(owner, requests_per_minute=1)
    first, second = asyncio.run(_ws_questions(owner[1], 2))
    assert first["type"] == "done"
    assert second["type"] == "error"
    assert second["error"]["code"] == "rate_limited"
    assert second["error"]["details"]["retry_after"] >= 1


# ----- visibility and operations -----


def test_usage_shows_the_windows_of_the_key_and_of_an_end_user(api, owner):
    limit(owner, requests_per_minute=10, user_requests_per_minute=3)
    ask(api, user_id="ann")
    body = api.get("/api/v1/usage", {"user_id": "ann"}).json()
    assert body["key"]["prefix"] == key_of(owner).prefix
    rpm = body["limits"]["requests_per_minute"]
    assert (rpm["limit"], rpm["used"], rpm["remaining"]) == (10, 1, 9)
    assert body["limits"]["tokens_per_day"]["limit"] is None  # counted, not limited
    assert body["limits"]["tokens_per_day"]["used"] > 0
    assert body["user"]["user_id"] == "ann"
    assert body["user"]["limits"]["requests_per_minute"]["remaining"] == 2


def test_usage_is_the_callers_own(api, other_api, owner):
    ask(api)
    assert other_api.get("/api/v1/usage").json()["limits"]["requests_per_minute"]["used"] == 0


def test_create_api_key_sets_limits(db):
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key",
        "--name=limited",
        "--user=budgeted",
        "--rpm=30",
        "--tokens-per-day=100000",
        "--usd-per-month=12.50",
        "--user-rpm=5",
        stdout=out,
        stderr=err,
    )
    api_key = ApiKey.objects.get(name="limited")
    assert api_key.requests_per_minute == 30
    assert api_key.tokens_per_day == 100_000
    assert api_key.usd_per_month == Decimal("12.50")
    assert api_key.user_requests_per_minute == 5
    assert api_key.user_tokens_per_day is None
    assert "requests_per_minute=30" in err.getvalue()


@pytest.mark.parametrize(
    "flag", ["--rpm=0", "--rpm=ten", "--usd-per-month=-1", "--usd-per-month=1.234"]
)
def test_create_api_key_refuses_bad_limits(db, flag):
    with pytest.raises(CommandError):
        call_command("create_api_key", "--name=x", flag, stdout=StringIO(), stderr=StringIO())


def test_admin_shows_usage_against_budget_and_edits_limits(api, owner, admin_client):
    limit(owner, tokens_per_day=50_000)
    ask(api)
    api_key = key_of(owner)
    listing = admin_client.get("/admin/core/apikey/").content.decode()
    assert "tokens today (of 50000)" in listing
    page = admin_client.get(f"/admin/core/apikey/{api_key.pk}/change/").content.decode()
    assert "questions this minute" in page
    response = admin_client.post(
        f"/admin/core/apikey/{api_key.pk}/change/",
        {"name": "renamed", "requests_per_minute": "7", "tokens_per_day": "", "usd_per_month": "3"},
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert (api_key.name, api_key.requests_per_minute) == ("renamed", 7)
    assert api_key.tokens_per_day is None
    assert api_key.usd_per_month == Decimal("3")


def test_the_openai_compatible_api_answers_429_in_openai_shape(api, owner):
    limit(owner, requests_per_minute=1)
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    assert api.post("/v1/chat/completions", body, format="json").status_code == 200

    refused = api.post("/v1/chat/completions", body, format="json")

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limited")
    assert refused["Retry-After"] == "30"
    assert refused["RateLimit-Limit"] == "1"
