"""The engine of one query: coordinator → memory → shopping/product/vision → writer.

It knows nothing of storage: what it reads and keeps comes through ``Ports``, what it
says goes through ``state.emit`` (``node`` as each agent starts, ``chunk`` per token),
and what it found is left on the ``RunState`` for the run owner (``queries.run``) to
store. It can be cancelled at any await: the run owner cancels its task on a stop
request or at the deadline, and the state keeps what was done until then.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from agents import coordinator, documents, memory, product, shopping, vision, writer
from agents.ports import Ports
from agents.state import RunState
from llmplatform.core import tracing

Agent = Callable[[RunState, Ports], Awaitable[None]]

AGENTS: dict[str, Agent] = {
    "CoordinatorAgent": coordinator.run,
    "MemoryAgent": memory.run,
    "DocumentsAgent": documents.run,
    "ShoppingAgent": shopping.run,
    "ProductAgent": product.run,
    "VisionAgent": vision.run,
    "WriterAgent": writer.run,
}


async def run_engine(state: RunState, ports: Ports) -> None:
    """Run the agents the coordinator routes to. Raises ApplicationError (ProviderError)."""
    await _run_agent("CoordinatorAgent", state, ports)
    documents.add_to_route(state)
    step = 0
    while step < len(state.route):  # agents may add steps
        if state.route[step] == "WriterAgent" and state.shopping_question:
            # The interview's question is the answer of this turn; no model call needed.
            await state.emit({"type": "chunk", "content": state.shopping_question})
            break
        await _run_agent(state.route[step], state, ports)
        step += 1
    documents.order_sources(state)
    if "MemoryAgent" not in state.agents_used and state.embedding is None:
        await memory.embed_query(state)  # stored for the memory of later questions


async def _run_agent(name: str, state: RunState, ports: Ports) -> None:
    await state.emit({"type": "node", "node": name})
    started = time.perf_counter()
    with tracing.span(f"agent {name}", {"llmplatform.agent": name}):
        await AGENTS[name](state, ports)
    state.agent_timings_ms[name] = round((time.perf_counter() - started) * 1000, 2)
    state.agents_used.append(name)
