from __future__ import annotations

import pytest

START = {
    "session_id": "sess_abc",
    "user_id": "user_123",
    "environment": {
        "device": "Desktop",
        "browser": "Chrome 120",
        "os": "macOS",
        "viewport": {"width": 1920, "height": 1080},
    },
}


@pytest.fixture
def started(api):
    """The seed's example session, started for ``api``'s owner."""
    response = api.post("/api/v1/session/start", START, format="json")
    assert response.status_code == 201, response.json()
    return response.json()
