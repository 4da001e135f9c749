"""The chat page at ``/``, its sign-in, and its JSON API under ``/chat/api/``."""

from __future__ import annotations

from django.urls import include, path

from chat.api import (
    AccountUsageView,
    AnswerFeedbackView,
    AnswerTraceView,
    ConversationActivityView,
    ConversationDetailView,
    ConversationDocumentsView,
    ConversationDocumentView,
    ConversationExportView,
    ConversationLeaveView,
    ConversationListView,
    ConversationSearchView,
    ConversationSettingsView,
    ConversationShareView,
    FileContentView,
    FileDetailView,
    FileUploadView,
)
from chat.presets_api import PresetDetailView, PresetListView
from chat.views import ChatLoginView, ChatLogoutView, chat_page, shared_conversation

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
        "conversations/<str:session_id>/export/<str:kind>",
        ConversationExportView.as_view(),
        name="chat-conversation-export",
    ),
    path(
        "conversations/<str:session_id>/settings",
        ConversationSettingsView.as_view(),
        name="chat-conversation-settings",
    ),
    path(
        "conversations/<str:session_id>/share",
        ConversationShareView.as_view(),
        name="chat-conversation-share",
    ),
    path(
        "conversations/<str:session_id>/leave",
        ConversationLeaveView.as_view(),
        name="chat-conversation-leave",
    ),
    # Not under conversations/: "search" is a valid conversation id.
    path("search", ConversationSearchView.as_view(), name="chat-search"),
    path("answers/<str:query_id>/feedback", AnswerFeedbackView.as_view(), name="chat-feedback"),
    path("answers/<str:query_id>/trace", AnswerTraceView.as_view(), name="chat-trace"),
    path("files", FileUploadView.as_view(), name="chat-files"),
    path("files/<str:file_id>", FileDetailView.as_view(), name="chat-file"),
    path("files/<str:file_id>/content", FileContentView.as_view(), name="chat-file-content"),
    path("usage", AccountUsageView.as_view(), name="chat-usage"),
    path("presets", PresetListView.as_view(), name="chat-presets"),
    path("presets/<str:preset_id>", PresetDetailView.as_view(), name="chat-preset"),
]

urlpatterns = [
    path("", chat_page, name="chat"),
    path("chat/api/", include(api_urlpatterns)),
    path("share/<str:token>", shared_conversation, name="chat-shared"),
    path("login/", ChatLoginView.as_view(), name="login"),
    path("logout/", ChatLogoutView.as_view(), name="logout"),
]
