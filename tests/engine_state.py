"""A RunState for tests that drive one agent directly: defaults a chat request would have."""

from __future__ import annotations

from typing import Any

from agents.ports import Emit, Scope
from agents.state import RunState


def run_state(*, scope: Scope, emit: Emit, **fields: Any) -> RunState:
    values: dict[str, Any] = {
        "text": "hi",
        "mode": "chat",
        "provider": "openai",
        "model": "m",
        "temperature": 0.0,
        "max_tokens": 10,
        "web_search": False,
        "use_memory": False,
        "selected_option": None,
        "images": [],
        "system_prompt_override": None,
        **fields,
    }
    return RunState(scope=scope, emit=emit, **values)
