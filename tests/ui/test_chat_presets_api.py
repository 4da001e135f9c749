"""The chat page's presets API (/chat/api/presets): saved per signed-in user, checked
like a conversation's answer settings, replaced by name, bounded, and owner-scoped."""

from __future__ import annotations

import pytest
from bson import ObjectId

from agents.providers.catalogue import chat_models
from sessions import presets
from sessions.models import ConversationPreset
from tests.ui.test_chat_api import csrf, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana():
    return signed_in("dana")


@pytest.fixture
def mallory():
    return signed_in("mallory")


def save(client, body):
    return client.post("/chat/api/presets", body, content_type="application/json", **csrf(client))


def names(client) -> list[str]:
    return [p["name"] for p in client.get("/chat/api/presets").json()["presets"]]


def test_presets_are_saved_checked_replaced_by_name_and_owner_scoped(dana, mallory):
    client, _ = dana
    other, _ = mallory
    served = chat_models()[-1]
    pirate = {
        "name": "Pirate",
        "settings": {
            "model_provider": served.provider,
            "model_name": served.model,
            "temperature": 0.3,
            "system_prompt": "Answer like a pirate.",
        },
        "options": {"mode": "chat", "web_search": False, "memory": "off"},
    }
    saved = save(client, pirate)
    assert saved.status_code == 201, saved.content
    assert saved.json()["settings"] == pirate["settings"]
    assert saved.json()["options"] == pirate["options"]
    # Saved again under its name: replaced, not doubled.
    again = save(client, {**pirate, "settings": {"temperature": 1.5}})
    assert again.json()["id"] == saved.json()["id"]
    assert client.get("/chat/api/presets").json()["presets"][0]["settings"] == {"temperature": 1.5}
    save(client, {"name": "Analyst", "options": {"use_documents": True}})
    assert names(client) == ["Analyst", "Pirate"]

    for bad in (
        {"name": "x", "settings": {"temperature": 2.5}},
        {"name": "x", "settings": {"model_provider": "nobody"}},
        {"name": "x", "options": {"memory": "everyone"}},
        {"name": "x", "options": {"web_search": 1}},
        {"name": "x", "options": {"colour": "red"}},
    ):
        refused = save(client, bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] == "invalid_conversation_settings"
    assert save(client, {"settings": {}}).status_code == 400  # a name is needed

    # Another account sees none of them and cannot delete them.
    assert names(other) == []
    delete = f"/chat/api/presets/{saved.json()['id']}"
    assert other.delete(delete, **csrf(other)).status_code == 404
    assert client.delete(f"/chat/api/presets/{ObjectId()}", **csrf(client)).status_code == 404
    assert client.delete("/chat/api/presets/nope", **csrf(client)).status_code == 404
    assert client.delete(delete, **csrf(client)).status_code == 204
    assert names(client) == ["Analyst"]


def test_a_user_keeps_a_bounded_number_of_presets(dana, monkeypatch):
    client, user = dana
    monkeypatch.setattr(presets, "MAX_PRESETS", 2)
    assert save(client, {"name": "one"}).status_code == 201
    assert save(client, {"name": "two"}).status_code == 201
    refused = save(client, {"name": "three"})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "too_many_presets"
    assert save(client, {"name": "two", "options": {"mode": "shopping"}}).status_code == 201
    assert ConversationPreset.objects.filter(owner=user).count() == 2


def test_presets_need_the_signed_in_session():
    from django.test import Client

    assert Client().get("/chat/api/presets").status_code in (401, 403)
