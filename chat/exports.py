"""A conversation as a file to keep: Markdown to read, JSON to process.

Both hold the same things: the title, when it started, and every question with its
answer, the model that answered, its sources and the user's rating.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chat.selectors import Transcript
from queries.models import Query

EXPORT_FORMAT_VERSION = 1
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def export_filename(transcript: Transcript, extension: str) -> str:
    stem = _UNSAFE_FILENAME.sub("-", transcript.title).strip("-.")[:60] or "conversation"
    return f"{stem}.{extension}"


def _turn(query: Query) -> dict[str, Any]:
    return {
        "query_id": str(query.pk),
        "asked_at": query.timestamp.isoformat(),
        "question": query.query,
        "answer": query.response,
        "status": query.status,
        "model_provider": query.model_provider,
        "model_name": query.model_name,
        "citations": query.citations,
        "feedback": (
            None
            if query.feedback_rating is None
            else {"rating": query.feedback_rating, "comment": query.feedback_comment}
        ),
    }


def transcript_json(transcript: Transcript) -> str:
    return json.dumps(
        {
            "format": "llm-platform-conversation",
            "version": EXPORT_FORMAT_VERSION,
            "session_id": transcript.session.session_id,
            "title": transcript.title,
            "started_at": transcript.session.start_t.isoformat(),
            "turns": [_turn(query) for query in transcript.queries],
        },
        ensure_ascii=False,
        indent=2,
    )


def _citation_line(number: int, citation: Any) -> str:
    if not isinstance(citation, dict):
        return f"{number}. {citation}"
    title = citation.get("title") or citation.get("filename") or "source"
    url = citation.get("url")
    return f"{number}. [{title}]({url})" if url else f"{number}. {title}"


def _sources_split(citations: list[Any]) -> tuple[list[Any], list[Any]]:
    """The sources the answer relied on, and the passages it was shown but did not cite
    (``cited: false``, as the page folds them under "Also searched")."""
    searched = [
        c
        for c in citations
        if isinstance(c, dict) and c.get("type") == "document" and c.get("cited") is False
    ]
    return [c for c in citations if c not in searched], searched


def transcript_markdown(transcript: Transcript) -> str:
    lines = [
        f"# {transcript.title or 'Conversation'}",
        "",
        f"Started {transcript.session.start_t:%Y-%m-%d %H:%M} UTC · "
        f"{len(transcript.queries)} questions",
    ]
    for query in transcript.queries:
        lines += ["", "---", "", f"**You** ({query.timestamp:%Y-%m-%d %H:%M} UTC):", ""]
        lines += ["> " + line if line else ">" for line in query.query.splitlines()]
        model = f"{query.model_provider}/{query.model_name}".strip("/")
        lines += ["", f"**Assistant** ({model}):", "", query.response or f"_({query.status})_"]
        relied, searched = _sources_split(query.citations or [])
        if relied:
            lines += ["", "Sources:", ""]
            lines += [_citation_line(n, c) for n, c in enumerate(relied, start=1)]
        if searched:
            lines += ["", "Also searched:", ""]
            lines += [_citation_line(n, c) for n, c in enumerate(searched, start=1)]
    return "\n".join(lines) + "\n"
