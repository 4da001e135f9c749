"""Text fields take text, as long as the schema says: a JSON number or boolean sent for a
string field is a 400, and so is text over ``max_length`` before its spaces are trimmed.

DRF's ``CharField`` turns ``0`` into ``"0"``, so ``{"session_id": 0}`` was accepted
although the OpenAPI schema says ``string``: clients learn the contract from the schema,
and the server must refuse what the schema refuses (the seed API, pydantic-validated, and
OpenAI's API do). Query strings and form fields are always text: the type check changes
only JSON bodies. Installed once, at start-up (``CoreConfig.ready``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

_lenient_to_internal_value = serializers.CharField.to_internal_value


def _strict_to_internal_value(self: serializers.CharField, data: Any) -> str:
    if not isinstance(data, str):
        self.fail("invalid")
    # The schema's maxLength counts what was sent: spaces trimmed afterwards count too.
    if self.max_length is not None and len(data) > self.max_length:
        self.fail("max_length", max_length=self.max_length)
    return _lenient_to_internal_value(self, data)


def strict_strings_install() -> None:
    """Make every DRF ``CharField`` (and subclass) refuse non-strings. Idempotent."""
    serializers.CharField.to_internal_value = _strict_to_internal_value
