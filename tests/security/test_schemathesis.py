"""Schemathesis over /openapi.json, in process (WSGI): every check Schemathesis has, on
schema-valid (positive) and schema-violating (negative) requests, with 0 failures.

Per-operation allowances live in ``schemathesis.toml`` (the same file ``st run`` reads
against a live server, see the README): refusals the schema cannot express, such as
unique variant names. SSE endpoints are excluded (served by the ASGI consumers, tested in
tests/streaming), and so is POST /query/ (it runs a model; the live run covers it).

Driven with Hypothesis directly: Schemathesis' pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

pytestmark = pytest.mark.django_db

CONFIG = Path(__file__).resolve().parents[2] / "schemathesis.toml"
# Examples per operation and mode: enough to find shape mismatches, few enough for
# `make test`; the live run (README) uses more.
MAX_EXAMPLES = 8


def _schema():
    from django.core.wsgi import get_wsgi_application

    return (
        schemathesis.openapi.from_wsgi(
            "/openapi.json", get_wsgi_application(), config=SchemathesisConfig.from_path(CONFIG)
        )
        .exclude(path_regex=r"/stream$")
        .exclude(method="POST", path="/api/v1/query/")
    )


def _labels() -> list[str]:
    return sorted(result.ok().label for result in _schema().get_all_operations())


@pytest.fixture(autouse=True)
def _offline(settings, tmp_path):
    settings.UPLOAD_DIR = tmp_path
    settings.SERPAPI_KEY = ""  # product search answers "unavailable" instead of calling out


def test_the_schema_has_operations():
    assert len(_labels()) >= 12


def test_every_check_is_on_and_the_allowances_are_few():
    config = SchemathesisConfig.from_path(CONFIG)
    checks = config.projects.default.checks
    assert checks.positive_data_acceptance.enabled and checks.negative_data_rejection.enabled
    assert checks.status_code_conformance.enabled and checks.response_schema_conformance.enabled
    assert len(config.projects.default.operations.operations) <= 9


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", _labels())
def test_api_conforms_to_its_schema(label, mode, owner):
    operation = _schema().find_operation_by_label(label)
    modes = operation.schema.config.generation_for(operation=operation).modes
    if mode not in modes:
        pytest.skip(f"{mode} data is not generated for {label} (schemathesis.toml)")
    # Explicit, so negative cases never drop it (that is tests/security' job, per route).
    headers = {"Authorization": f"Bearer {owner[1]}"}

    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        # Every check: raises with each failure (status, content type, body, acceptance).
        case.call_and_validate(headers=headers)

    try:
        run()
    except Unsatisfiable:
        # Nothing this operation takes can violate its schema (a free-form path id, no
        # body, no parameters): there is no negative case to send.
        assert mode is GenerationMode.NEGATIVE
