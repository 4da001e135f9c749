"""Writes for the chat UI that combine apps: a conversation (``sessions``) keeps the end
user's documents (``files``), so every later question in it is asked with them; deleting
a conversation takes its questions (``queries``) and the files only it used along."""

from __future__ import annotations

from bson import ObjectId

from chat.selectors import conversation_documents, file_of_end_user_get
from files.models import File
from files.selectors import file_list
from files.services import file_delete
from llmplatform.core.errors import ApplicationError
from queries.selectors import files_asked_with_elsewhere, query_file_ids
from queries.serializers import MAX_DOCUMENTS
from queries.services import conversation_queries_delete
from sessions.conversation_data import (
    conversation_document_add,
    conversation_documents_remove,
    conversation_records_delete,
)
from sessions.models import ConversationShare
from sessions.selectors import documents_kept_elsewhere, end_user_session_get
from sessions.sharing import conversation_share, conversation_share_revoke


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
    # Deleted files fall out first, so they do not count against the limit.
    existing = {
        str(document.pk) for document in conversation_documents(owner=owner, session=session)
    }
    conversation_documents_remove(
        session=session, file_ids=[i for i in session.document_ids or [] if i not in existing]
    )
    # Every question sends all of them, and a question names at most MAX_DOCUMENTS.
    if not conversation_document_add(session=session, file_id=str(stored.pk), limit=MAX_DOCUMENTS):
        raise ApplicationError(
            f"A conversation has at most {MAX_DOCUMENTS} documents.",
            code="too_many_conversation_documents",
            extra={"hint": "Remove one from the conversation first."},
        )
    session.refresh_from_db(fields=["document_ids"])
    return conversation_documents(owner=owner, session=session)


def conversation_document_detach(
    *, owner, user_id: str, session_id: str, file_id: str
) -> list[File]:
    """Remove a document from the end user's conversation (the file itself stays; removing
    one that is not there changes nothing); returns the conversation's documents. Raises
    NotFound (also for other end users' conversations)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    conversation_documents_remove(session=session, file_ids=[file_id])
    session.refresh_from_db(fields=["document_ids"])
    return conversation_documents(owner=owner, session=session)


def conversation_delete(*, owner, user_id: str, session_id: str) -> dict[str, int]:
    """Delete one of the end user's conversations with its data: its questions with their
    vectors and summaries, the files it used that none of the end user's other
    conversations uses (their passages and bytes too), its events and share links, and
    the session. Returns what went, counted. Raises NotFound (also for other end users'
    conversations), ApplicationError 409 ``conversation_busy`` while an answer runs."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    used = list(
        dict.fromkeys(
            [
                *(session.document_ids or []),
                *query_file_ids(owner=owner, user_id=user_id, session_id=session_id),
            ]
        )
    )
    elsewhere = documents_kept_elsewhere(
        owner=owner, user_id=user_id, session_id=session_id, file_ids=used
    ) | files_asked_with_elsewhere(
        owner=owner, user_id=user_id, session_id=session_id, file_ids=used
    )
    # Questions first: a refusal (an answer still running) leaves everything in place.
    questions = conversation_queries_delete(owner=owner, user_id=user_id, session_id=session_id)
    only_here = [file_id for file_id in used if file_id not in elsewhere]
    files = 0
    for stored in file_list(owner=owner, user_id=user_id).filter(
        pk__in=[ObjectId(i) for i in only_here if ObjectId.is_valid(i)]
    ):
        file_delete(file=stored)
        files += 1
    conversation_records_delete(session=session)
    return {"questions": questions, "files": files}


def conversation_share_link(*, owner, user_id: str, session_id: str) -> ConversationShare:
    """The end user's conversation's read-only link (made once, until revoked). Raises
    NotFound (also for other end users' conversations)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    return conversation_share(session=session)


def conversation_share_stop(*, owner, user_id: str, session_id: str) -> int:
    """Revoke the conversation's links: they are a 404 from now on. Raises NotFound (also
    for other end users' conversations)."""
    session = end_user_session_get(owner=owner, user_id=user_id, session_id=session_id)
    return conversation_share_revoke(session=session)
