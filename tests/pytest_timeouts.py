"""Pytest plugin: longer per-test time limits for tests marked ``slow`` or ``browser``.

pytest-timeout's ``timeout`` ([tool.pytest.ini_options]) bounds every other test. A slow
test starts real processes of its own (workers it kills, a local model, Chromium) and may
legitimately take minutes on a two-core machine; it gets SLOW_TEST_TIMEOUT_S unless it
names its own with ``@pytest.mark.timeout(seconds)``. Loaded with ``-p`` (pyproject.toml).
"""

from __future__ import annotations

import pytest

# The slowest legitimate test (tests/queries/test_worker_lost.py) starts two Celery workers and
# daphne, each allowed 60 s, and follows a 10 s answer: well under this on a loaded machine.
SLOW_TEST_TIMEOUT_S = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if item.get_closest_marker("slow") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT_S))
