"""What a client asks: one question and its options, as every edge hands it to
``queries.start.query_start``.

The edges build it from their checked requests (``QueryRequestSerializer.question``);
its field defaults are the only ones: the serializer declares them from here, and
nothing downstream re-declares them. ``RunRequest`` is what the run reads back of it
(and of what query_start chose) from ``Query.request``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from agents.ports import MemoryScope


@dataclass(frozen=True)
class QuestionParams:
    user_id: str
    session_id: str
    query: str
    # None (or blank): the session's experiment, else the configured default, decides.
    model_provider: str | None = None
    model_name: str | None = None
    mode: str = "chat"
    web_search: bool = False
    use_memory: bool = True
    # With use_memory: recall past questions of all the end user's conversations
    # ("user") or of this session only ("session").
    memory_scope: MemoryScope = "user"
    # Regenerate or edit and resend: the query (of this session and end user) whose turn
    # this question answers again; the answers are alternatives of one turn
    # (``Query.metadata["alternative_of"]``: the turn's first query).
    alternative_of: str | None = None
    # File ids, or image data URLs that query_start stores as files.
    attachments: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    use_documents: bool = False
    selected_option: str | None = None
    temperature: float | None = None
    # None: the configured default (``run_config().default_max_tokens``).
    max_tokens: int | None = None
    # The client-kept messages (the OpenAI-compatible API), checked by query_start;
    # None: the session's stored history is the context.
    messages: list[dict[str, Any]] | None = None
    # Structured output in OpenAI's shape (``{"type": "json_object"}`` or a json_schema),
    # checked by ``agents.providers.structured.response_format_parsed``; None: free text.
    response_format: dict[str, Any] | None = None
    # Tool calling in OpenAI's shapes (``agents.providers.tool_calling``), checked by
    # query_start: the functions the model may call, whether and which it must call
    # (``auto``, ``none``, ``required`` or a named function; None: the vendor's default)
    # and whether it may call several at once (None: the vendor's default).
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    # The turns after the question when a tool-calling loop is under way: the model's
    # calls (assistant turns with ``tool_calls``) and their results (``tool`` turns).
    tool_turns: list[dict[str, Any]] | None = None
    # stop, seed, the penalties, logprobs and top_logprobs in OpenAI's shapes, the set ones
    # only (``agents.providers.base.Sampling.stored``); checked by query_start against
    # what the chosen provider honours. None: the vendor's defaults.
    sampling: dict[str, Any] | None = None
    # What the asking edge needs to answer again when the query is read back later (the
    # Responses API's echoed request fields, for GET /v1/responses/{id}); stored as given
    # in ``Query.request["client_request"]``, never read by the run.
    client_request: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunRequest:
    """``Query.request`` as ``queries.run`` reads it: the question's options, with the
    model settings query_start chose. A key a row was stored without (an older row)
    takes the question's default."""

    temperature: float
    max_tokens: int
    web_search: bool = QuestionParams.web_search
    use_memory: bool = QuestionParams.use_memory
    memory_scope: MemoryScope = QuestionParams.memory_scope
    attachments: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    use_documents: bool = QuestionParams.use_documents
    selected_option: str | None = QuestionParams.selected_option
    system_prompt: str | None = None
    messages: list[dict[str, Any]] | None = QuestionParams.messages
    response_format: dict[str, Any] | None = QuestionParams.response_format
    tools: list[dict[str, Any]] | None = QuestionParams.tools
    tool_choice: str | dict[str, Any] | None = QuestionParams.tool_choice
    parallel_tool_calls: bool | None = QuestionParams.parallel_tool_calls
    tool_turns: list[dict[str, Any]] | None = QuestionParams.tool_turns
    sampling: dict[str, Any] | None = QuestionParams.sampling

    @classmethod
    def stored(cls, request: dict[str, Any]) -> RunRequest:
        """Raises KeyError when the row has no model settings (never stored by
        query_start)."""
        if "conversation" in request and "messages" not in request:
            # Rows stored before the client's list was named ``messages`` (queued across
            # the upgrade) still run with it.
            request = {**request, "messages": request["conversation"]}
        return cls(**{f.name: request[f.name] for f in fields(cls) if f.name in request})
