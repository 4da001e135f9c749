"""The engine extension /v1 needs: the client-kept messages passed to the model as given."""

from __future__ import annotations

import pytest

from agents.ports import Scope
from agents.providers.base import ChatMessage
from agents.writer import BASE_PROMPT, build_request
from llmplatform.core.errors import ApplicationError
from queries.models import Query
from queries.question import QuestionParams, RunRequest
from queries.start import query_start
from queries.streams import query_wait
from tests.engine_state import run_state

SCOPE = Scope(owner_id="o", user_id="u", session_id="s", query_id="q")


async def _emit(event):
    pass


def test_the_writer_sends_the_client_messages_instead_of_the_stored_history():
    state = run_state(
        scope=SCOPE,
        emit=_emit,
        text="And in French?",
        client_messages=[
            ChatMessage(role="user", content="Say hello"),
            ChatMessage(role="assistant", content="Hello"),
        ],
    )
    state.history = [("stored question", "stored answer")]
    request = build_request(state)
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "Say hello"),
        ("assistant", "Hello"),
        ("user", "And in French?"),
    ]


def test_without_client_messages_the_stored_history_is_the_context():
    state = run_state(scope=SCOPE, emit=_emit, text="Next")
    state.history = [("stored question", "stored answer")]
    assert [m.content for m in build_request(state).messages] == [
        "stored question",
        "stored answer",
        "Next",
    ]


def _params(**extra):
    return QuestionParams(
        **{"user_id": "u1", "session_id": "s1", "query": "Hi", "use_memory": False, **extra}
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process")
def test_query_start_stores_the_client_messages_and_the_run_uses_it(owner, fakes):
    messages = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": "Ahoy"},
    ]
    query = query_start(owner=owner[0], params=_params(model_provider="openai", messages=messages))
    query = query_wait(query=query)
    assert query.status == Query.Status.COMPLETED
    assert query.request["messages"] == messages
    sent = fakes["openai"].chat_requests[-1].body["messages"]
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("You are a pirate.")
    assert BASE_PROMPT not in sent[0]["content"]  # the client's prompt takes its place
    assert [(m["role"], m["content"]) for m in sent[1:]] == [
        ("user", "Say hello"),
        ("assistant", "Ahoy"),
        ("user", "Hi"),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "messages",
    [
        "not a list",
        [{"role": "tool", "content": "x"}],
        [{"role": "user", "content": ["parts"]}],
        [{"role": "user"}],
        [{"role": "user", "content": "x", "name": "extra"}],
        [{"role": "user", "content": "x"}] * 501,
    ],
)
def test_query_start_refuses_malformed_client_messages_before_storing(owner, messages):
    with pytest.raises(ApplicationError) as raised:
        query_start(owner=owner[0], params=_params(messages=messages))
    assert (raised.value.status, raised.value.code) == (400, "invalid_conversation")
    assert not Query.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("in_process")
def test_a_client_system_prompt_is_not_replaced_by_an_experiments(owner, fakes):
    from sessions.experiments import experiment_start
    from sessions.models import Experiment

    experiment_start(
        experiment=Experiment.objects.create(
            key="prompt",
            name="prompt",
            variants=[
                {"name": "control", "weight": 0.0001, "overrides": {}},
                {"name": "treatment", "weight": 100, "overrides": {"system_prompt": "Rhyme."}},
            ],
        )
    )
    own = query_wait(
        query=query_start(
            owner=owner[0],
            params=_params(
                session_id="s-own",
                model_provider="openai",
                messages=[{"role": "system", "content": "Answer in French."}],
            ),
        )
    )
    system = fakes["openai"].chat_requests[-1].body["messages"][0]["content"]
    assert system.startswith("Answer in French.") and "Rhyme." not in system
    assert own.experiments == {}  # the variant decided nothing: not counted for it
    shaped = query_wait(
        query=query_start(
            owner=owner[0],
            params=_params(session_id="s-shaped", model_provider="openai", messages=[]),
        )
    )
    system = fakes["openai"].chat_requests[-1].body["messages"][0]["content"]
    assert system.startswith("Rhyme.")
    assert shaped.experiments == {"prompt": "treatment"}


def test_a_row_stored_with_the_old_conversation_key_runs_with_its_messages():
    """A question queued before the upgrade stored the list under ``conversation``."""
    turns = [{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Yes"}]
    stored = {"temperature": 0.2, "max_tokens": 64, "conversation": turns}
    assert RunRequest.stored(stored).messages == turns
    assert RunRequest.stored({**stored, "messages": turns[:1]}).messages == turns[:1]
