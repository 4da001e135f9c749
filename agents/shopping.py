"""ShoppingAgent: a three-round interview (use, budget, must-haves) before product search.

The interview state is kept by the run's interview store (with the session), so any
web or worker process can continue it. ``selected_option`` answers the pending question; the
"just show me" option (or saying so) skips ahead to the products.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.ports import Ports
from agents.state import RunState

SKIP_OPTION = "Just show me products"
_SKIP_WORDS = re.compile(r"\b(just show me|skip|show (me )?(the )?products)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Round:
    key: str
    question: str
    options: tuple[str, ...]


ROUNDS = (
    Round(
        "use",
        "What will you mainly use it for?",
        ("Everyday use", "Work or study", "Travel", "Sport or outdoors", "Gaming or hobbies"),
    ),
    Round(
        "budget", "What is your budget?", ("Under $50", "$50 to $150", "$150 to $400", "Over $400")
    ),
    Round(
        "priority",
        "What matters most to you?",
        (
            "Best quality",
            "Best value for money",
            "Light and portable",
            "Long battery life or durability",
        ),
    ),
)


def advance_interview(interview: dict, *, text: str, selected_option: str | None) -> dict:
    """The interview after this turn; ``awaiting`` is False once it is time for products."""
    if not interview.get("awaiting"):
        return {
            "topic": text,
            "round": 0,
            "answers": {},
            "awaiting": not _SKIP_WORDS.search(text),
        }
    answer = selected_option or text  # a typed answer counts as the choice
    if answer == SKIP_OPTION or _SKIP_WORDS.search(answer):
        return {**interview, "awaiting": False}
    current = interview["round"]
    next_round = current + 1
    return {
        **interview,
        "answers": {**interview["answers"], ROUNDS[current].key: answer},
        "round": next_round,
        "awaiting": next_round < len(ROUNDS),
    }


def product_query_for(interview: dict) -> str:
    answers = interview.get("answers", {})
    parts = [interview.get("topic", "")]
    if budget := answers.get("budget"):
        parts.append(budget.lower())
    if priority := answers.get("priority"):
        parts.append(priority.lower())
    return " ".join(part for part in parts if part)[:200]


async def run(state: RunState, ports: Ports) -> None:
    interview = await ports.interviews.load(state.scope)
    interview = advance_interview(interview, text=state.text, selected_option=state.selected_option)
    if interview["awaiting"]:
        current = ROUNDS[interview["round"]]
        state.shopping_question = f"{current.question} (question {interview['round'] + 1} of 3)"
        state.options = [*current.options, SKIP_OPTION]
        state.intent = "shopping"
    else:
        state.shopping_needs = dict(interview["answers"])
        state.product_query = product_query_for(interview)
        if "ProductAgent" not in state.route:
            state.route.insert(state.route.index("ShoppingAgent") + 1, "ProductAgent")
        interview = {}  # the next shopping question starts a new interview
    await ports.interviews.save(state.scope, interview)
