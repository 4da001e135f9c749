"""The chat page at ``/``, its sign-in, and its JSON API under ``/chat/api/``."""

from __future__ import annotations

from django.urls import include, path

from chat.api import (
    AccountUsageView,
    AnswerFeedbackView,
    ConversationActivityView,
    ConversationDetailView,
    ConversationDocumentsView,
    ConversationDocumentView,
    ConversationLeaveView,
    ConversationListView,
    FileDetailView,
    FileUploadView,
)
from chat.views import ChatLoginView, ChatLogoutView, chat_page

api_urlpatterns = [
    path("conversations", ConversationListView.as_view(), name="chat-conversations"),
    path(
        "conversations/<str:session_id>",
        ConversationDetailView.as_view(),
        name="chat-conversation",
    ),
    path(
        "conversations/<str:session_id>/activity",
        ConversationActivityView.as_view(),
        name="chat-conversation-activity",
    ),
    path(
        "conversations/<str:session_id>/documents",
        ConversationDocumentsView.as_view(),
        name="chat-conversation-documents",
    ),
    path(
        "conversations/<str:session_id>/documents/<str:file_id>",
        ConversationDocumentView.as_view(),
        name="chat-conversation-document",
    ),
    path(
        "conversations/<str:session_id>/leave",
        ConversationLeaveView.as_view(),
        name="chat-conversation-leave",
    ),
    path("answers/<str:query_id>/feedback", AnswerFeedbackView.as_view(), name="chat-feedback"),
    path("files", FileUploadView.as_view(), name="chat-files"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="chat-file"),
    path("usage", AccountUsageView.as_view(), name="chat-usage"),
]

urlpatterns = [
    path("", chat_page, name="chat"),
    path("chat/api/", include(api_urlpatterns)),
    path("login/", ChatLoginView.as_view(), name="login"),
    path("logout/", ChatLogoutView.as_view(), name="logout"),
]
