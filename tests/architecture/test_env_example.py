"""``.env.example`` documents the defaults: copied to ``.env`` unchanged, it changes nothing.

Settings are read twice in fresh processes: once with none of the example's variables
set, once with exactly the example's values (parsed as ``.env`` files are, by
python-dotenv). Every setting must come out the same, so the example can neither drift
from a default nor set something the defaults do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"

# Settings as JSON (repr for what JSON cannot hold), read in a process of its own.
READ_SETTINGS = """
import json, sys
from django.conf import settings
settings._setup()
values = {
    name: getattr(settings, name)
    for name in dir(settings._wrapped)
    if name.isupper()
}
json.dump(values, sys.stdout, default=repr, sort_keys=True)
"""


def _settings_with(variables: dict[str, str]) -> dict[str, object]:
    names = set(dotenv_values(EXAMPLE))
    env = {name: value for name, value in os.environ.items() if name not in names}
    # No .env of the developer's own may leak in, and the suite's own overrides neither.
    env.update(
        variables,
        LLMPLATFORM_SKIP_DOTENV="1",
        DJANGO_SETTINGS_MODULE=os.environ["DJANGO_SETTINGS_MODULE"],
    )
    result = subprocess.run(
        [sys.executable, "-c", READ_SETTINGS],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return json.loads(result.stdout)


def test_every_value_in_env_example_is_the_settings_default():
    example = {name: value or "" for name, value in dotenv_values(EXAMPLE).items()}
    defaults = _settings_with({})
    documented = _settings_with(example)
    differences = {
        name: {"default": defaults.get(name), ".env.example": documented.get(name)}
        for name in sorted(set(defaults) | set(documented))
        if defaults.get(name) != documented.get(name)
    }
    assert not differences, (
        "Settings that .env.example changes from their defaults (fix the example, or the "
        f"default if the example is right): {json.dumps(differences, indent=2, default=repr)}"
    )


def test_the_example_lists_variables_and_nothing_else():
    example = dotenv_values(EXAMPLE)
    assert example, ".env.example parsed to nothing"
    assert all(name.isupper() for name in example)
