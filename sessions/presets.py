"""A chat user's presets: saved answer settings (model, temperature, system prompt) and
question options, per account and end user, applied to a conversation by the page.

Reads and writes are scoped to one owner's end user: another's preset is a 404.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from django.db import IntegrityError

from llmplatform.core.errors import ApplicationError, NotFound
from sessions.conversation_data import answer_settings_clean
from sessions.models import ConversationPreset

# Presets one end user may keep: a list to pick from, not a store.
MAX_PRESETS = 50
# The page's question options a preset may hold, and the values each takes.
OPTION_VALUES: dict[str, tuple[Any, ...]] = {
    "mode": ("chat", "shopping"),
    "web_search": (True, False),
    "memory": ("off", "session", "user"),
    "use_documents": (True, False),
}


def _options_clean(options: dict[str, Any]) -> dict[str, Any]:
    for key, value in options.items():
        allowed = OPTION_VALUES.get(key)
        if allowed is None:
            raise ApplicationError(
                f"Unknown option {key!r}; presets hold {sorted(OPTION_VALUES)}.",
                code="invalid_conversation_settings",
            )
        # By type too: 1 is not True here.
        if not any(type(value) is type(v) and value == v for v in allowed):
            raise ApplicationError(
                f"options.{key} must be one of {list(allowed)}.",
                code="invalid_conversation_settings",
            )
    return dict(options)


def presets_list(*, owner, user_id: str) -> list[ConversationPreset]:
    """The end user's presets by name."""
    return list(ConversationPreset.objects.filter(owner=owner, user_id=user_id).order_by("name"))


def preset_save(
    *, owner, user_id: str, name: str, settings: dict[str, Any], options: dict[str, Any]
) -> ConversationPreset:
    """Save a preset; one with the same name is replaced. Raises ApplicationError 400
    ``invalid_conversation_settings``, 409 ``too_many_presets``."""
    cleaned = answer_settings_clean(settings)
    chosen = _options_clean(options)
    existing = ConversationPreset.objects.filter(owner=owner, user_id=user_id, name=name).first()
    if existing is not None:
        existing.settings, existing.options = cleaned, chosen
        existing.save(update_fields=["settings", "options"])
        return existing
    if ConversationPreset.objects.filter(owner=owner, user_id=user_id).count() >= MAX_PRESETS:
        raise ApplicationError(
            f"You have {MAX_PRESETS} presets, the most one user keeps; delete one first.",
            code="too_many_presets",
            status=409,
        )
    try:
        return ConversationPreset.objects.create(
            owner=owner, user_id=user_id, name=name, settings=cleaned, options=chosen
        )
    except IntegrityError:
        # Saved under the same name by another tab meanwhile: this save replaces it.
        return preset_save(
            owner=owner, user_id=user_id, name=name, settings=settings, options=options
        )


def preset_delete(*, owner, user_id: str, preset_id: str) -> None:
    """Raises NotFound (also for another owner's or end user's preset)."""
    if not ObjectId.is_valid(preset_id):
        raise NotFound("Preset")
    deleted, _ = ConversationPreset.objects.filter(
        pk=ObjectId(preset_id), owner=owner, user_id=user_id
    ).delete()
    if not deleted:
        raise NotFound("Preset")
