from __future__ import annotations

# The files suite's fixtures: a fresh vector cache per test, a throw-away uploads
# directory, and an ingested handbook to search.
from tests.files.conftest import _fresh_vector_cache, facts_file, uploads  # noqa: F401
