"""Writes for what a chat conversation (a session) holds besides its events: its
documents, its answer settings, and deleting it.

The document list is changed with single conditional updates (``$addToSet``, ``$pull``),
never read, changed and saved whole: two tabs changing it at once keep both changes.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from agents.providers.catalogue import chat_models
from llmplatform.core.errors import ApplicationError
from sessions.assignment import OVERRIDE_KEYS, overrides_clean
from sessions.models import ConversationShare, Event, Session
from sessions.selectors import end_user_session_get
from sessions.services import session_cache_forget


def _sessions_collection():
    return connection.database[Session._meta.db_table]


def conversation_document_add(*, session: Session, file_id: str, limit: int) -> bool:
    """Add a file id (one the caller has checked is the end user's document) to the
    conversation's documents, unless it already holds ``limit`` others; True when it is
    there afterwards. Raises nothing.

    One conditional ``$addToSet``: two tabs adding at once can neither drop each other's
    document (as a read, then a save of the whole list, did) nor pass the limit together.
    """
    result = _sessions_collection().update_one(
        {
            "_id": session.pk,
            "$or": [
                {"document_ids": file_id},
                {f"document_ids.{limit - 1}": {"$exists": False}},
            ],
        },
        {"$addToSet": {"document_ids": file_id}},
    )
    return result.matched_count == 1


def conversation_documents_remove(*, session: Session, file_ids: list[str]) -> None:
    """Take file ids out of the conversation's documents, in one ``$pull`` (documents
    added meanwhile stay). Raises nothing."""
    if file_ids:
        _sessions_collection().update_one(
            {"_id": session.pk}, {"$pull": {"document_ids": {"$in": list(file_ids)}}}
        )


def answer_settings_clean(settings: dict[str, Any]) -> dict[str, Any]:
    """Answer settings as stored (an empty or null field means "left open"). A model must
    be one this deployment serves, the same list as ``GET /v1/models``, and names its
    provider. Raises ApplicationError 400 ``invalid_conversation_settings``."""
    cleaned = overrides_clean(settings, where="", code="invalid_conversation_settings")
    provider, model = cleaned.get("model_provider"), cleaned.get("model_name")
    if model and not provider:
        raise ApplicationError(
            "model_name needs its model_provider.", code="invalid_conversation_settings"
        )
    served = {(m.provider, m.model) for m in chat_models()}
    if provider and not any(p == provider and (not model or m == model) for p, m in served):
        raise ApplicationError(
            f"{provider}/{model or '*'} is not a model this deployment serves.",
            code="invalid_conversation_settings",
            extra={"served": sorted(f"{p}/{m}" for p, m in served)},
        )
    return {key: cleaned[key] for key in OVERRIDE_KEYS if key in cleaned}


def conversation_answer_settings_set(
    *, owner, user_id: str, session_id: str, settings: dict[str, Any]
) -> Session:
    """Store the end user's conversation's answer settings (all of them at once, checked
    by ``answer_settings_clean``). Raises ApplicationError 400
    ``invalid_conversation_settings``, NotFound (also for other end users' sessions)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    session.answer_settings = answer_settings_clean(settings)
    session.save(update_fields=["answer_settings"])
    return session


def conversation_records_delete(*, session: Session) -> None:
    """Delete the session with its events and share links (its queries and files are
    deleted above this app, by ``chat.services.conversation_delete``). Raises nothing."""
    Event.objects.filter(owner_id=session.owner_id, session_id=session.session_id).delete()
    ConversationShare.objects.filter(
        owner_id=session.owner_id, session_id=session.session_id
    ).delete()
    session_cache_forget(owner_id=session.owner_id, session_id=session.session_id)
    session.delete()
