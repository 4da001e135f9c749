"""stop, seed, the penalties, n and logprobs through /v1 with the real `openai` SDK, a live
ASGI server and the fake vendors: each vendor receives the fields it has under its own
names; one a vendor cannot honour is OpenAI's 400 naming it (its default passes), before
anything runs."""

from __future__ import annotations

import openai
import pytest

from queries.models import Query
from tests.openai_compat.clients import VENDOR_MODELS, sdk, stored_query

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "Count to ten"}]


@pytest.fixture(autouse=True)
def _wired(vendor_settings):
    """Vendors pointed at the fakes."""


def _sent(fake) -> dict:
    return fake.chat_requests[-1].body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("vendor", ["openai", "openrouter", "google"])
def test_every_field_reaches_the_vendors_that_have_them(
    live_daphne_in_process, owner, fakes, vendor, stream
):
    fields = {"stop": ["END", "STOP"], "seed": 7, "presence_penalty": 0.5,
              "frequency_penalty": -0.25}  # fmt: skip
    created = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS[vendor], messages=MESSAGES, stream=stream, **fields
    )
    # A stream is read to its end first: the run has finished when the last chunk came.
    chunks = list(created) if stream else [created]
    completion_id = chunks[0].id
    sent = _sent(fakes[vendor])
    if vendor == "google":
        config = sent["generationConfig"]
        assert config["stopSequences"] == ["END", "STOP"]
        assert (config["seed"], config["presencePenalty"], config["frequencyPenalty"]) == (
            7,
            0.5,
            -0.25,
        )
    else:
        assert {name: sent[name] for name in fields} == fields
    query = stored_query(completion_id)
    assert query.status == Query.Status.COMPLETED
    assert query.request["sampling"] == fields


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_gets_stop_sequences_from_a_string(live_daphne_in_process, owner, fakes, stream):
    created = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS["anthropic"], messages=MESSAGES, stop="END", stream=stream
    )
    if stream:
        list(created)
    sent = _sent(fakes["anthropic"])
    assert sent["stop_sequences"] == ["END"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("seed", 7), ("presence_penalty", 0.5), ("frequency_penalty", 1.0), ("logprobs", True)],
)
def test_anthropic_refuses_what_it_cannot_honour_naming_the_field(
    live_daphne_in_process, owner, fakes, field, value
):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(live_daphne_in_process, owner[1]).chat.completions.create(
            model=VENDOR_MODELS["anthropic"], messages=MESSAGES, **{field: value}
        )
    assert refused.value.code == "unsupported_parameter"
    assert refused.value.param == field
    assert "openai" in refused.value.message and field in refused.value.message
    assert not Query.objects.exists() and not fakes["anthropic"].chat_requests


def test_defaults_pass_for_anthropic_and_are_not_sent(live_daphne_in_process, owner, fakes):
    completion = sdk(live_daphne_in_process, owner[1]).chat.completions.create(
        model=VENDOR_MODELS["anthropic"],
        messages=MESSAGES,
        presence_penalty=0,
        frequency_penalty=0.0,
        n=1,
        logprobs=False,
        stop=[],
        seed=None,
    )
    sent = _sent(fakes["anthropic"])
    assert "stop_sequences" not in sent and "seed" not in sent
    assert stored_query(completion.id).request["sampling"] is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 9}, "n"),
        ({"top_logprobs": 3}, "top_logprobs"),  # without logprobs: true
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"presence_penalty": 2.5}, "presence_penalty"),
    ],
)
def test_what_is_out_of_range_is_400_naming_it(live_daphne_in_process, owner, fields, param):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(live_daphne_in_process, owner[1]).chat.completions.create(
            model=VENDOR_MODELS["openai"], messages=MESSAGES, **fields
        )
    assert refused.value.param == param
    assert not Query.objects.exists()
