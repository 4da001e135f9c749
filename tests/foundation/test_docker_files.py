"""The Docker files can't be built here (no engine); check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_has_the_services_and_points_them_at_each_other():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "redis", "mongodb"} <= set(services)
    assert services["mongodb"]["image"].startswith("mongodb/mongodb-atlas-local")
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["MONGODB_URI"].startswith("mongodb://mongodb:")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["ENVIRONMENT"] == "production"
    assert "agents" in " ".join(services["worker"]["command"])


def test_dockerfile_installs_production_requirements_only():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    assert "requirements-dev.txt" not in dockerfile  # SecantusDB (GPL) stays out of the image
    assert "llmplatform.asgi:application" in dockerfile
    assert "secantusdb" not in (ROOT / "requirements.txt").read_text()
