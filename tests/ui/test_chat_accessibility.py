"""An axe-core audit of the chat pages (#21), in headless Chromium against a real daphne:
the sign-in page, the chat page with an answered conversation (sources, alternatives,
presets, files panel open) and a shared conversation, each in light and dark mode, have
no serious or critical violations.

axe-core is vendored and pinned (tests/ui/vendor/VERSIONS.md): the test checks the
file's SHA-256 before running it, and evaluates it through the DevTools protocol, so the
pages' CSP (scripts from this site only) stays as served.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from queries.models import Query
from sessions.models import ConversationShare, Session
from tests.ui.test_chat_browser import PASSWORD, SCREENSHOTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
BLOCKING = ("serious", "critical")
SHARE_TOKEN = "a" * 43


@pytest.fixture
def answered(vendor_settings):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    user = get_user_model().objects.create_user("dana", password=PASSWORD)
    Session.objects.create(owner=user, session_id="c-a11y", user_id="dana")
    common = {
        "owner": user,
        "user_id": "dana",
        "session_id": "c-a11y",
        "status": "completed",
        "model_provider": "openai",
        "model_name": "gpt-4o-mini",
    }
    first = Query.objects.create(
        query="How long do refunds take?",
        response="Refunds are paid within **30 days** [1].\n\n```python\nprint('ok')\n```",
        citations=[
            {
                "type": "document",
                "file_id": "6650f0c2a1b2c3d4e5f60718",
                "title": "handbook.pdf",
                "page": 7,
                "snippet": "Refunds are paid within 30 days of a return.",
                "url": "/api/v1/files/6650f0c2a1b2c3d4e5f60718/content",
                "cited": True,
            },
            {
                "type": "document",
                "file_id": "6650f0c2a1b2c3d4e5f60718",
                "title": "handbook.pdf",
                "page": 3,
                "snippet": "Returns need the receipt.",
                "url": "/api/v1/files/6650f0c2a1b2c3d4e5f60718/content",
                "cited": False,
            },
        ],
        usage={"input_tokens": 12, "output_tokens": 9, "total_tokens": 21, "cost_usd": 0.0004},
        latency={"total_ms": 1500.0},
        **common,
    )
    Query.objects.create(
        query="How long do refunds take?",
        response="Thirty days.",
        metadata={"alternative_of": str(first.pk)},
        **common,
    )
    ConversationShare.objects.create(
        owner=user, session_id="c-a11y", user_id="dana", token=SHARE_TOKEN
    )
    return user


def audit(page) -> list[str]:
    """The serious and critical violations on the page as it is now."""
    source = AXE.read_text(encoding="utf-8")
    assert hashlib.sha256(source.encode("utf-8")).hexdigest() == AXE_SHA256
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {v['targets']}"
        for v in violations
        if v["impact"] in BLOCKING
    ]


def both_schemes(page) -> list[str]:
    found = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        found += [f"{scheme} {page.url}: {v}" for v in audit(page)]
    return found


def test_the_chat_pages_have_no_serious_or_critical_axe_violations(live_daphne, answered, browser):
    page = browser.page
    page.goto(f"{live_daphne.url}/login/")
    found = both_schemes(page)

    log_in(page, live_daphne.url)
    page.get_by_role("button", name="How long do refunds take?", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('#transcript .turn').length === 2")
    page.locator("#files-panel summary").click()
    page.locator("#details-panel summary").click()
    found += both_schemes(page)
    page.get_by_role("button", name="Previous answer").click()
    page.locator(".also-searched summary").click()
    found += both_schemes(page)

    page.goto(f"{live_daphne.url}/share/{SHARE_TOKEN}")
    found += both_schemes(page)
    assert found == [], "\n".join(found)
