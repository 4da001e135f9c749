"""Every project management command works on the embedded default (MONGODB_URI unset).

manage.py attaches the embedded database for every command except a few known not to
need one (llmplatform/embedded/attach.py, COMMANDS_WITHOUT_DATABASE). The commands are
discovered from the apps' management/commands folders, so a command added later is run
here too, or this test says which harmless arguments it needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from pymongo import MongoClient

from llmplatform.embedded.attach import command_uses_database
from llmplatform.embedded.leases import ATTACHED_URI_ENV

ROOT = Path(__file__).resolve().parents[2]
NOT_ATTACHED = "embedded-database-not-attached"
SEED_OWNER = "demo"  # seed_demo_data creates it; import_seed_data imports for it

# Harmless arguments for each project command, in the order they run (one database).
# `{seed_uri}` and `{seed_db}` name a tiny seed-shaped database on the test server.
RUNS: dict[str, list[str]] = {
    "setup_indexes": [],
    "create_api_key": ["--name", "commands test", "--user", "commands-test"],
    "seed_demo_data": ["--queries", "2", "--owner", SEED_OWNER, "--no-progress"],
    "reindex_documents": ["--all"],
    "import_seed_data": [
        "--source-uri",
        "{seed_uri}",
        "--source-db",
        "{seed_db}",
        "--owner",
        SEED_OWNER,
    ],
}
# Not run here: serve runs until stopped (tests/foundation/test_first_run.py serves);
# run_evaluation asks a model for every item, which the local model does in minutes on a
# busy machine (tests/evaluations runs it against the fake vendors, progress bar and all).
NOT_RUN = {"serve", "run_evaluation"}


def project_commands() -> set[str]:
    """The management commands of the project's own apps (never the virtualenv's)."""
    found = set()
    for pattern in ("*/management/commands/*.py", "*/*/management/commands/*.py"):
        for path in ROOT.glob(pattern):
            if not path.name.startswith("_") and ".venv" not in path.parts:
                found.add(path.stem)
    return found


def _env(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    (tmp_path / "commands_test_settings.py").write_text(
        "from llmplatform.settings import *  # noqa: F403\n"
        f"EMBEDDED_MONGO_DIR = {str(data_dir)!r}\n"
        f"FIRST_RUN_FILE = {str(tmp_path / 'first-run.txt')!r}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", ATTACHED_URI_ENV)}
    env.update(
        PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}",
        DJANGO_SETTINGS_MODULE="commands_test_settings",
        LLMPLATFORM_SKIP_DOTENV="1",
        UPLOAD_DIR=str(tmp_path / "uploads"),
        LOG_FILE="",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def data_dir(tmp_path) -> Iterator[Path]:
    directory = tmp_path / "mongo"
    yield directory
    # The server stops once its last user exits; make sure of it whatever the test did.
    try:
        pid = int(json.loads((directory / "server.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def seed_db() -> Iterator[dict[str, str]]:
    """A one-query database shaped as the seed service left it, on the test server."""
    uri = settings.DATABASES["default"]["HOST"]
    name = f"seed_{uuid.uuid4().hex[:10]}"
    with MongoClient(uri, tz_aware=True) as client:
        client[name]["queries"].insert_one(
            {
                "user_id": "user_123",
                "session_id": "sess_abc",
                "query": "What are the best headphones?",
                "response": "Here are some excellent options...",
                "embedding": [((31 + i) % 97) / 97.0 for i in range(1536)],
                "intent": "shopping",
                "model_provider": "openai",
                "model_name": "gpt-4o-mini",
                "timestamp": datetime(2025, 1, 10, 9, 0, tzinfo=UTC),
            }
        )
        yield {"seed_uri": uri, "seed_db": name}
        client.drop_database(name)


def test_every_project_command_has_harmless_arguments_here():
    assert project_commands() == set(RUNS) | NOT_RUN, (
        "a project command without an entry in RUNS: add harmless arguments for it"
    )


@pytest.mark.slow
def test_every_project_command_runs_on_the_embedded_default(tmp_path, data_dir, seed_db):
    env = _env(tmp_path, data_dir)
    result = _manage(env, "migrate", "--no-input")
    assert result.returncode == 0, result.stderr
    for command, arguments in RUNS.items():
        args = [argument.format(**seed_db) for argument in arguments]
        result = _manage(env, command, *args)
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{command} {args}:\n{output}"
        assert NOT_ATTACHED not in output, f"{command} ran without the embedded database"
    # It ran on this test's embedded server, and import_seed_data imported the one query.
    assert "leases held by" in (data_dir / "secantus.log").read_text(errors="replace")
    report = result.stdout.splitlines()
    assert any(line.split()[:3] == ["queries", "1", "1"] for line in report), result.stdout


def test_serve_help_documents_host_and_port_and_starts_no_server(tmp_path, data_dir):
    result = _manage(_env(tmp_path, data_dir), "serve", "--help")
    assert result.returncode == 0, result.stderr
    for word in ("--host", "--port", "HOST", "PORT"):
        assert word in result.stdout
    assert not data_dir.exists()  # help needs no database


@pytest.mark.parametrize(
    ("argv", "attaches"),
    [
        (["manage.py"], False),
        (["manage.py", "help"], False),
        (["manage.py", "--version"], False),
        (["manage.py", "check"], False),
        (["manage.py", "check", "--deploy"], False),
        (["manage.py", "check", "--database", "default"], True),
        (["manage.py", "check", "--database=default"], True),
        (["manage.py", "collectstatic", "--no-input"], False),
        (["manage.py", "seed_demo_data", "--help"], False),
        (["manage.py", "reindex_documents", "-h"], False),
        (["manage.py", "seed_demo_data", "--queries", "10"], True),
        (["manage.py", "reindex_documents", "--all"], True),
        (["manage.py", "import_seed_data", "--owner", "x"], True),
        (["manage.py", "makemigrations", "--check"], True),  # reads applied migrations
        (["manage.py", "shell"], True),
        (["manage.py", "a_command_added_later"], True),
    ],
)
def test_which_command_lines_attach(argv, attaches):
    assert command_uses_database(argv) is attaches
