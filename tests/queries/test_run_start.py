"""What query_start decides before a run: its session, its model, its experiments, search.

Each test is a bug found by reading the old code: a shopping question made its session
around session_start (so it never entered experiments), a variant was recorded on queries
it did not shape, a provider-only request took another vendor's model name, and web
search on a provider without it was silently ignored.
"""

from __future__ import annotations

import json
import time

import pytest
from pymongo.errors import AutoReconnect

from llmplatform.core.models import ApiKey
from llmplatform.core.quotas import quota_windows
from queries import memory_store, start
from queries.models import Query
from sessions.experiments import experiment_start
from sessions.models import Experiment, Session

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("in_process")]


def ask(api, text="Hello", **extra):
    body = {"user_id": "u1", "session_id": "s1", "query": text, "use_memory": False, **extra}
    return api.post("/api/v1/query/", body, format="json")


def running_experiment(key: str, overrides: dict) -> Experiment:
    experiment = Experiment.objects.create(
        key=key,
        name=key,
        # One variant takes everyone, so the assignment is known.
        variants=[
            {"name": "control", "weight": 0.0001, "overrides": {}},
            {"name": "treatment", "weight": 100, "overrides": overrides},
        ],
    )
    return experiment_start(experiment=experiment)


def test_a_shopping_question_before_session_start_makes_a_real_session(api, owner):
    running_experiment("shop-model", {"temperature": 0.3})
    first = ask(api, "I need new headphones", mode="shopping").json()
    assert "question 1 of 3" in first["response"]
    session = Session.objects.get(owner=owner[0], session_id="s1")
    # Started through session_start: exposed to the running experiment, and counted.
    assert session.experiments == {"shop-model": "treatment"}
    assert session.user_id == "u1"
    assert first["experiments"] == {"shop-model": "treatment"}


def test_any_first_query_starts_its_session_with_experiments(api, owner):
    running_experiment("prompt", {"system_prompt": "Be brief."})
    answer = ask(api).json()
    session = Session.objects.get(owner=owner[0], session_id="s1")
    assert session.experiments == {"prompt": "treatment"}
    assert answer["experiments"] == {"prompt": "treatment"}


def test_a_query_may_name_a_session_another_end_user_started(api, owner):
    assert ask(api).status_code == 200
    response = api.post(
        "/api/v1/query/",
        {"user_id": "someone-else", "session_id": "s1", "query": "Hi", "use_memory": False},
        format="json",
    )
    assert response.status_code == 200  # as the query API always allowed
    assert response.json()["user_id"] == "someone-else"
    session = Session.objects.get(owner=owner[0], session_id="s1")
    assert session.user_id == "u1"  # the session is not taken over


def test_a_variant_is_recorded_only_when_it_shaped_the_query(api, in_process):
    running_experiment("model", {"model_provider": "anthropic", "model_name": "claude-haiku-4-5"})
    shaped = ask(api).json()
    assert (shaped["model_provider"], shaped["model_name"]) == ("anthropic", "claude-haiku-4-5")
    assert shaped["experiments"] == {"model": "treatment"}
    # The request names its own provider and model: the variant changed nothing.
    own = ask(api, model_provider="openai", model_name="gpt-4o-mini").json()
    assert (own["model_provider"], own["model_name"]) == ("openai", "gpt-4o-mini")
    assert own["experiments"] == {}
    assert Query.objects.get(pk=own["query_id"]).experiments == {}


def test_a_provider_only_request_never_takes_another_vendors_model(api, in_process):
    running_experiment("model", {"model_provider": "anthropic", "model_name": "claude-haiku-4-5"})
    answer = ask(api, model_provider="openai").json()
    assert answer["model_provider"] == "openai"
    assert answer["model_name"] == "gpt-4o-mini"  # openai's default, not the Claude model
    assert answer["experiments"] == {}
    sent = in_process["openai"].chat_requests[-1].body
    assert sent["model"] == "gpt-4o-mini"


def test_a_provider_only_request_is_excluded_from_an_experiment_varying_the_provider(api):
    # Exposure is decided by the fields the experiment varies, never by the arm: a request
    # that names the provider bypasses it in every arm alike, and is counted as excluded.
    running_experiment("model", {"model_provider": "openai", "model_name": "gpt-4o"})
    answer = ask(api, model_provider="openai").json()
    assert answer["model_name"] == "gpt-4o-mini"  # openai's default: the request decided
    assert answer["experiments"] == {}
    assert Query.objects.get(pk=answer["query_id"]).experiments_excluded == {
        "model": {"variant": "treatment", "reason": "request_set:model_name"}
    }


def test_the_request_temperature_wins_and_then_the_variant_is_not_recorded(api, in_process):
    running_experiment("temp", {"temperature": 0.1})
    own = ask(api, model_provider="openai", temperature=0.9).json()
    assert in_process["openai"].chat_requests[-1].body["temperature"] == 0.9
    assert own["experiments"] == {}
    shaped = ask(api, model_provider="openai").json()
    assert in_process["openai"].chat_requests[-1].body["temperature"] == 0.1
    assert shaped["experiments"] == {"temp": "treatment"}


def test_web_search_on_a_provider_without_it_is_a_400_naming_those_with_it(
    api, in_process, settings
):
    settings.LOCAL_MODEL_ENABLED = True
    from agents.providers import local

    if not local.is_available():
        pytest.fail("the local model files are not installed: run `make install`")
    response = ask(api, model_provider="local", web_search=True)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "web_search_unsupported"
    assert "openai" in error["message"] and "local" in error["message"]
    assert set(error["details"]["providers_with_web_search"]) == {
        "openai",
        "anthropic",
        "google",
        "openrouter",
    }
    assert not Query.objects.exists()  # refused before anything was stored


# ---- in this process, the run starts before its row is stored ----


def _insert_of(save, before):
    """Query.save with ``before()`` run ahead of the one insert (force_insert) only."""

    def save_with(self, *args, **kwargs):
        if kwargs.get("force_insert"):
            before()
        return save(self, *args, **kwargs)

    return save_with


def test_the_vendor_is_asked_while_the_question_is_being_stored(api, in_process, monkeypatch):
    # The insert is no longer before the first token: the insert below waits until the
    # vendor has the request, which it never would if the run waited for the row.
    openai = in_process["openai"]
    vendor_asked_first = []

    def wait_for_the_vendor():
        deadline = time.monotonic() + 5
        while not openai.chat_requests and time.monotonic() < deadline:
            time.sleep(0.01)
        vendor_asked_first.append(bool(openai.chat_requests))

    monkeypatch.setattr(Query, "save", _insert_of(Query.save, wait_for_the_vendor))
    answer = ask(api, model_provider="openai", model_name="gpt-4o-mini")
    assert answer.status_code == 200, answer.json()
    assert vendor_asked_first == [True]
    # The run stored its outcome on the row once the row was there.
    stored = Query.objects.get(pk=answer.json()["query_id"])
    assert stored.status == Query.Status.COMPLETED
    assert stored.response == answer.json()["response"]
    assert Session.objects.get(session_id="s1").query_count == 1


def test_a_question_that_cannot_be_stored_fails_and_its_run_stores_nothing(
    api, owner, in_process, monkeypatch
):
    def database_gone():
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(Query, "save", _insert_of(Query.save, database_gone))
    response = ask(api, model_provider="openai", model_name="gpt-4o-mini")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert "connection closed" not in response.content.decode()
    # The run that had started ends without a row to store into, and gives back the
    # tokens admission reserved for it.
    api_key = ApiKey.objects.get(owner=owner[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tokens = next(w for w in quota_windows(api_key=api_key) if w.name == "tokens_per_day")
        if tokens.used == 0:
            break
        time.sleep(0.05)
    assert tokens.used == 0
    assert not Query.objects.exists()


def test_a_run_in_this_process_is_handed_the_turns_admission_read(api, in_process, monkeypatch):
    # Admission reads the session's recent turns to reserve for them; the run it starts
    # puts those same turns in the prompt instead of reading them again.
    run_reads = []
    read = memory_store.recent_turns

    def counted_read(scope, *, limit):
        run_reads.append(scope.query_id)
        return read(scope, limit=limit)

    monkeypatch.setattr(memory_store, "recent_turns", counted_read)
    model = {"model_provider": "openai", "model_name": "gpt-4o-mini", "use_memory": True}
    first = ask(api, "Name a fruit", **model)
    assert first.status_code == 200, first.json()
    second = ask(api, "Name a colour", **model)
    assert second.status_code == 200, second.json()
    prompt = json.dumps(in_process["openai"].chat_requests[-1].body["messages"])
    assert "Name a fruit" in prompt and json.dumps(first.json()["response"])[1:-1] in prompt
    assert run_reads == []


def test_an_answer_ends_only_once_its_session_has_counted_it(api, in_process, monkeypatch):
    # The count runs beside the insert, off the way to the first token; a client that
    # sees the answer end sees it counted.
    record = start.session_query_record

    def slow_record(*, session, at):
        time.sleep(1)
        record(session=session, at=at)

    monkeypatch.setattr(start, "session_query_record", slow_record)
    answer = ask(api, model_provider="openai", model_name="gpt-4o-mini")
    assert answer.status_code == 200, answer.json()
    assert Session.objects.get(session_id="s1").query_count == 1


def test_a_question_its_session_could_not_count_is_still_answered(
    api, in_process, monkeypatch, caplog
):
    def record_fails(*, session, at):
        raise AutoReconnect("connection closed")

    monkeypatch.setattr(start, "session_query_record", record_fails)
    answer = ask(api, model_provider="openai", model_name="gpt-4o-mini")
    assert answer.status_code == 200, answer.json()
    assert Query.objects.get(pk=answer.json()["query_id"]).status == Query.Status.COMPLETED
    assert "a question was not counted" in caplog.text
