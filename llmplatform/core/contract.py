"""The numbers several apps' request shapes and stored documents must agree on.

Each is defined here once; serializers, models, services and the OpenAPI schema import it.
A change here is a change of the API contract (and, for the vector size, of the stored
indexes): say so in the changelog.
"""

from __future__ import annotations

# user_id, session_id, event ids and request ids: what a client names things with. Ids
# appear in URL paths and index keys, so they stay short.
MAX_ID_LENGTH = 128

# The sampling temperature a question, an experiment variant or /v1 may ask for (OpenAI's
# range; the request is refused before any vendor is called).
MIN_TEMPERATURE = 0.0
MAX_TEMPERATURE = 2.0

# The longest answer a question may ask for (max_tokens). Stored answers are at most this
# long, which bounds the history a question's admission reserves (queries.admission).
MIN_ANSWER_TOKENS = 1
MAX_ANSWER_TOKENS = 32_000

# The size of stored embeddings and of the vector indexes over them: OpenAI's
# text-embedding-3-small, the embedder the indexes are built for.
EMBEDDING_DIMENSIONS = 1536
