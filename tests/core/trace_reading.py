"""Reading a stored trace as a tree, for the tests' assertions on names and parents."""

from __future__ import annotations

from llmplatform.core.models import TraceSpan


class SpanTree:
    def __init__(self, spans: list[TraceSpan]) -> None:
        self.spans = sorted(spans, key=lambda span: span.started_at)
        self._by_id = {span.span_id: span for span in self.spans}

    def named(self, name: str) -> list[TraceSpan]:
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> TraceSpan:
        found = self.named(name)
        names = [span.name for span in self.spans]
        assert len(found) == 1, f"{len(found)} spans named {name!r} in {names}"
        return found[0]

    def parent_of(self, span: TraceSpan) -> TraceSpan | None:
        return self._by_id.get(span.parent_id)

    def parent(self, name: str) -> TraceSpan | None:
        return self.parent_of(self.one(name))

    def children_of(self, parent: TraceSpan) -> list[TraceSpan]:
        return [span for span in self.spans if span.parent_id == parent.span_id]
