"""Writes for the chat UI that combine two apps: a conversation (``sessions``) keeps the
end user's documents (``files``), so every later question in it is asked with them."""

from __future__ import annotations

from chat.selectors import conversation_documents, file_of_end_user_get
from files.models import File
from llmplatform.core.errors import ApplicationError
from queries.serializers import MAX_DOCUMENTS
from sessions.selectors import end_user_session_get
from sessions.services import conversation_documents_set


def conversation_document_attach(
    *, owner, user_id: str, session_id: str, file_id: str
) -> list[File]:
    """Add one of the end user's documents to their conversation (again: nothing changes);
    returns the conversation's documents. Raises NotFound (also for other end users'
    conversations and files), ApplicationError 400 (``not_a_document``,
    ``too_many_conversation_documents``)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    stored = file_of_end_user_get(owner=owner, user_id=user_id, file_id=file_id)
    if not stored.is_document:
        raise ApplicationError(
            f"{stored.filename!r} is an image: images go with one question, not the conversation.",
            code="not_a_document",
        )
    # Deleted files fall out here, so they do not count against the limit.
    ids = [str(document.pk) for document in conversation_documents(owner=owner, session=session)]
    if str(stored.pk) not in ids:
        # Every question sends all of them, and a question names at most MAX_DOCUMENTS.
        if len(ids) >= MAX_DOCUMENTS:
            raise ApplicationError(
                f"A conversation has at most {MAX_DOCUMENTS} documents.",
                code="too_many_conversation_documents",
                extra={"hint": "Remove one from the conversation first."},
            )
        ids.append(str(stored.pk))
    conversation_documents_set(session=session, document_ids=ids)
    return conversation_documents(owner=owner, session=session)


def conversation_document_detach(
    *, owner, user_id: str, session_id: str, file_id: str
) -> list[File]:
    """Remove a document from the end user's conversation (the file itself stays; removing
    one that is not there changes nothing); returns the conversation's documents. Raises
    NotFound (also for other end users' conversations)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    ids = [str(document.pk) for document in conversation_documents(owner=owner, session=session)]
    conversation_documents_set(session=session, document_ids=[i for i in ids if i != file_id])
    return conversation_documents(owner=owner, session=session)
