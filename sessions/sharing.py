"""Read-only links to chat conversations: made and revoked by the conversation's owner,
opened by anyone who has the link (``chat.views.shared_conversation``)."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import User
from django.db import IntegrityError
from django.utils import timezone

from llmplatform.core.errors import NotFound
from sessions.models import ConversationShare, Session

# 32 random bytes: as hard to guess as an API key.
SHARE_TOKEN_BYTES = 32


def _live_shares(*, owner_id, session_id: str):
    return ConversationShare.objects.filter(
        owner_id=owner_id, session_id=session_id, revoked_at=None
    )


def conversation_share_get(*, session: Session) -> ConversationShare | None:
    """The conversation's live link, or None. Raises nothing."""
    return (
        _live_shares(owner_id=session.owner_id, session_id=session.session_id)
        .order_by("-created_at")
        .first()
    )


def conversation_share(*, session: Session) -> ConversationShare:
    """The conversation's live link, made when it has none (sharing twice gives the same
    link). Raises nothing."""
    existing = conversation_share_get(session=session)
    if existing is not None:
        return existing
    while True:
        try:
            return ConversationShare.objects.create(
                owner_id=session.owner_id,
                session_id=session.session_id,
                user_id=session.user_id,
                token=secrets.token_urlsafe(SHARE_TOKEN_BYTES),
            )
        except IntegrityError:  # pragma: no cover - a 256-bit collision
            continue


def conversation_share_revoke(*, session: Session) -> int:
    """Revoke every live link of the conversation; returns how many. Raises nothing."""
    return _live_shares(owner_id=session.owner_id, session_id=session.session_id).update(
        revoked_at=timezone.now()
    )


def shared_session_get(*, token: str) -> tuple[User, Session]:
    """The owner and session a live link opens. Raises NotFound for an unknown or revoked
    token, and when the conversation is gone."""
    share = (
        ConversationShare.objects.filter(token=token, revoked_at=None)
        .select_related("owner")
        .first()
        if token
        else None
    )
    session = (
        None
        if share is None
        else Session.objects.filter(
            owner_id=share.owner_id, session_id=share.session_id, user_id=share.user_id
        ).first()
    )
    if share is None or session is None:
        raise NotFound("Shared conversation")
    return share.owner, session
