"""Django settings. Every value comes from the environment through ``llmplatform.env``.

``.env.example`` lists every variable with a comment; the README explains them.

Over 500 lines on purpose: one module, in the order of ``.env.example``, so an operator
finds every setting and its comment in one place (split files would hide the order in
which they depend on each other, e.g. the run budget before the Celery limits).
"""

from __future__ import annotations

from pathlib import Path

from django.utils.csp import CSP

from llmplatform.core.config import RunBudget, parse_model_aliases
from llmplatform.env import (
    EnvError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_optional_float,
    env_optional_int,
    env_optional_str,
    env_str,
    load_dotenv_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv_file(BASE_DIR / ".env")

# ==================== Application ====================
APP_NAME = env_str("APP_NAME", "LLM Platform")
APP_VERSION = env_str("APP_VERSION", "2.0.0")
DEBUG = env_bool("DEBUG", False)
ENVIRONMENT = env_choice(
    "ENVIRONMENT", "development", ("development", "staging", "production", "test")
)
IS_PRODUCTION = ENVIRONMENT == "production"

# ==================== Server ====================
HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000, minimum=1)
# `serve` writes a fresh development database's admin password and API key here (0600);
# the first login deletes it (llmplatform/core/first_run.py).
FIRST_RUN_FILE = BASE_DIR / "var" / "first-run.txt"
# `manage.py serve` closes a request that arrives too slowly or too large (see
# llmplatform/core/server_protocol.py): the request line and headers within
# SERVER_HEADER_TIMEOUT_S of the connection or the request's first byte and at most
# SERVER_MAX_HEADER_BYTES; a body within SERVER_BODY_TIMEOUT_S of its headers; an idle
# keep-alive connection after SERVER_KEEP_ALIVE_S.
SERVER_HEADER_TIMEOUT_S = env_float("SERVER_HEADER_TIMEOUT_S", 20.0, minimum=0.1)
SERVER_BODY_TIMEOUT_S = env_float("SERVER_BODY_TIMEOUT_S", 120.0, minimum=0.1)
SERVER_KEEP_ALIVE_S = env_int("SERVER_KEEP_ALIVE_S", 5, minimum=1)
SERVER_MAX_HEADER_BYTES = env_int("SERVER_MAX_HEADER_BYTES", 65536, minimum=1024)
WORKERS = env_int("WORKERS", 1, minimum=1)

# ==================== Security ====================
DEFAULT_SECRET_KEY = "your-secret-key-change-this-in-production"  # noqa: S105 (refused in production)
SECRET_KEY = env_str("SECRET_KEY", DEFAULT_SECRET_KEY)
if IS_PRODUCTION and (SECRET_KEY == DEFAULT_SECRET_KEY or len(SECRET_KEY) < 50):
    raise EnvError(
        "SECRET_KEY must be set to a random value of at least 50 characters when "
        "ENVIRONMENT=production (generate one with: python -c "
        '"import secrets; print(secrets.token_urlsafe(64))").'
    )
ACCESS_TOKEN_EXPIRE_MINUTES = env_int("ACCESS_TOKEN_EXPIRE_MINUTES", 30, minimum=1)
# Chat UI and admin logins expire after this long without use.
SESSION_COOKIE_AGE = ACCESS_TOKEN_EXPIRE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# API keys are high-entropy random tokens; more than this many failures a minute from
# one client address is rate limited (429) to slow down guessing.
API_KEY_FAILURES_PER_MINUTE = env_int("API_KEY_FAILURES_PER_MINUTE", 30, minimum=1)
# Limits and budgets of every API key that does not set its own (admin, or
# `create_api_key --rpm N --tokens-per-day N --usd-per-month X`); unset: no limit.
# Questions per minute, input+output tokens per UTC day, provider USD per UTC month,
# and the per-end-user (user_id) limits inside a key. See llmplatform/core/quotas.py.
DEFAULT_KEY_RPM = env_optional_int("DEFAULT_KEY_RPM", minimum=1)
DEFAULT_KEY_TOKENS_PER_DAY = env_optional_int("DEFAULT_KEY_TOKENS_PER_DAY", minimum=1)
DEFAULT_KEY_USD_PER_MONTH = env_optional_float("DEFAULT_KEY_USD_PER_MONTH", minimum=0.0)
DEFAULT_USER_RPM = env_optional_int("DEFAULT_USER_RPM", minimum=1)
DEFAULT_USER_TOKENS_PER_DAY = env_optional_int("DEFAULT_USER_TOKENS_PER_DAY", minimum=1)
# The same for signed-in accounts asking without a key (the browser chat), where their
# AccountLimits row (admin) sets none; unset: no limit.
DEFAULT_ACCOUNT_RPM = env_optional_int("DEFAULT_ACCOUNT_RPM", minimum=1)
DEFAULT_ACCOUNT_TOKENS_PER_DAY = env_optional_int("DEFAULT_ACCOUNT_TOKENS_PER_DAY", minimum=1)
DEFAULT_ACCOUNT_USD_PER_MONTH = env_optional_float("DEFAULT_ACCOUNT_USD_PER_MONTH", minimum=0.0)
# X-Forwarded-For / X-Forwarded-Proto are believed only from these addresses or networks
# (your load balancer); empty: the socket's peer is the client, whatever it sends.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
# Sign-in (chat UI and admin): this many failures for one user name, or from one client
# address, lock that name or address out for LOGIN_LOCKOUT_SECONDS.
LOGIN_FAILURES_PER_USERNAME = env_int("LOGIN_FAILURES_PER_USERNAME", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Content-Security-Policy for every page Django serves (chat UI, admin, login, docs):
# scripts only from our origin or with the per-response nonce, never inline otherwise.
# Styles allow inline because admin templates use style attributes. The API docs add
# what ReDoc needs (llmplatform.core.security_headers.docs_csp).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    # Product cards show the shops' images, which may come from any https host.
    "img-src": [CSP.SELF, "data:", "https:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Health checks from the load balancer arrive over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]

# ==================== Database ====================
MONGO_DB = env_str("MONGO_DB", "LLMPlatform")
MONGODB_URI = env_optional_str("MONGODB_URI")
EMBEDDED_MONGO_DIR = BASE_DIR / "var" / "mongo"
EMBEDDED_MONGO_CACHE_MB = env_int("EMBEDDED_MONGO_CACHE_MB", 256, minimum=32)
if MONGODB_URI is None:
    if IS_PRODUCTION:
        raise EnvError("MONGODB_URI must be set when ENVIRONMENT=production.")
    # Nothing starts here. The commands that need the embedded SecantusDB attach to it
    # (starting it if none runs), and it stops once no process uses it; see
    # llmplatform/embedded/. Until then the host below fails any query loudly.
    from llmplatform.embedded.attach import NOT_ATTACHED_URI, inherited_uri

    MONGODB_URI = inherited_uri() or NOT_ATTACHED_URI
    MONGODB_EMBEDDED = True
else:
    MONGODB_EMBEDDED = False
MONGODB_TIMEOUT_MS = env_int("MONGODB_TIMEOUT_MS", 5000, minimum=100)

DATABASES = {
    "default": {
        "ENGINE": "django_mongodb_backend",
        "HOST": MONGODB_URI,
        "NAME": MONGO_DB,
        "OPTIONS": {
            "serverSelectionTimeoutMS": MONGODB_TIMEOUT_MS,
            "connectTimeoutMS": MONGODB_TIMEOUT_MS,
        },
    },
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
MIGRATION_MODULES = {
    "admin": "mongo_migrations.admin",
    "auth": "mongo_migrations.auth",
    "contenttypes": "mongo_migrations.contenttypes",
}

# ==================== Redis, Celery, Channels ====================
# Unset: no Redis is needed; background work runs in-process and the realtime event
# log lives in memory (single process only). Set it in production.
REDIS_URL = env_optional_str("REDIS_URL")
if IS_PRODUCTION and REDIS_URL is None:
    raise EnvError(
        "REDIS_URL must be set when ENVIRONMENT=production: Celery, the streaming event log "
        "and the failure counters must be shared by every process (e.g. "
        "REDIS_URL=redis://redis:6379/0)."
    )

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
# Without Redis, llmplatform.core.dispatch runs a task in this process (Task.apply).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# One time budget for a query run; every other limit of the run is derived from it in
# llmplatform.core.config.RunBudget, in order: engine deadline < Celery soft limit <
# Celery hard limit < the JSON endpoint's wait; the sweeper fails runs whose worker died.
QUERY_TIMEOUT_S = env_float("QUERY_TIMEOUT_S", 240.0, minimum=1.0)
# How often a running query looks for a cancel request, whatever stage it is in.
QUERY_CANCEL_POLL_S = env_float("QUERY_CANCEL_POLL_S", 0.1, minimum=0.01)
_RUN_BUDGET = RunBudget.for_timeout(QUERY_TIMEOUT_S)
CELERY_TASK_SOFT_TIME_LIMIT = _RUN_BUDGET.celery_soft_limit_s
CELERY_TASK_TIME_LIMIT = _RUN_BUDGET.celery_hard_limit_s
# Celery's Redis transport redelivers an unacknowledged task after this long: only once
# the first delivery's hard limit has certainly passed.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _RUN_BUDGET.visibility_timeout_s}
CELERY_BEAT_SCHEDULE = {
    # Day rollups for analytics and the dashboard; reads add what is not folded yet.
    "fold-analytics-rollups": {
        "task": "analytics.fold_rollups",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 60.0},
    },
    "fail-runs-whose-worker-died": {
        "task": "queries.sweep_runs",
        "schedule": _RUN_BUDGET.sweep_every_s,
        "options": {"queue": "default", "expires": _RUN_BUDGET.sweep_every_s},
    },
    # Document ingestions whose worker died or that were never taken end `failed`.
    "fail-stuck-document-ingestions": {
        "task": "files.sweep_ingestions",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 60.0},
    },
    # Chat UI conversations end when their user left or went idle (sessions.services).
    "end-idle-sessions": {
        "task": "sessions.end_idle",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 60.0},
    },
    # Evaluation runs whose worker died resume; runs past their deadline end `failed`.
    "resume-or-fail-stuck-evaluations": {
        "task": "evaluations.sweep_runs",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 60.0},
    },
    # A sample of running experiments' live answers scored, within each one's daily cap.
    "score-live-answers-of-experiments": {
        "task": "evaluations.score_live_answers",
        "schedule": 60.0,
        "options": {"queue": "default", "expires": 60.0},
    },
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_CONCURRENCY = WORKERS
# Several deployments (or test runs) can share one Redis: each sees only its own tasks.
CELERY_KEY_PREFIX = env_str("CELERY_KEY_PREFIX", "")
if CELERY_KEY_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = CELERY_KEY_PREFIX
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": CELERY_KEY_PREFIX}

# No channel layer: SSE and websocket consumers follow each query's event log (a Redis
# Stream), never Channels groups. Without a layer a connection costs no Redis
# subscription of its own.
CHANNEL_LAYERS: dict[str, dict] = {}

# A comment frame after this many seconds of silence keeps proxies from closing streams.
SSE_HEARTBEAT_SECONDS = env_float("SSE_HEARTBEAT_SECONDS", 15.0, minimum=0.1)

# ==================== Metrics (Prometheus) ====================
# GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it is a 404.
METRICS_TOKEN = env_optional_str("METRICS_TOKEN")
# A Celery worker serves its metrics on this port (0: not served); see core/metrics.py.
METRICS_WORKER_PORT = env_int("METRICS_WORKER_PORT", 0, minimum=0)
METRICS_WORKER_ADDR = env_str("METRICS_WORKER_ADDR", "127.0.0.1")

# ==================== Traces (OpenTelemetry) ====================
# Every question is a trace of its steps (llmplatform.core.tracing), always stored in
# MongoDB for TRACE_RETENTION_DAYS; also sent to an OTLP/HTTP collector when
# OTEL_EXPORTER_OTLP_ENDPOINT is set (the other OTEL_EXPORTER_OTLP_* variables apply).
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "llmplatform")
# The share of traces kept; a trace with an error, or slower than TRACE_SLOW_MS, always is.
TRACE_SAMPLE_RATE = env_float("TRACE_SAMPLE_RATE", 1.0, minimum=0.0)
TRACE_SLOW_MS = env_float("TRACE_SLOW_MS", 10000.0, minimum=0.0)
# Record prompts, completions and passages in spans (truncated, secrets redacted).
TRACE_CONTENT = env_bool("TRACE_CONTENT", False)
TRACE_RETENTION_DAYS = env_int("TRACE_RETENTION_DAYS", 7, minimum=1)
TRACE_MAX_SPANS = env_int("TRACE_MAX_SPANS", 500, minimum=1)

# ==================== LLM providers ====================
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_optional_str("OPENAI_BASE_URL")
OPENAI_SEARCH_MODEL = env_str("OPENAI_SEARCH_MODEL", "gpt-4o-mini-search-preview")
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_optional_str("ANTHROPIC_BASE_URL")
GOOGLE_API_KEY = env_str("GOOGLE_API_KEY")
GOOGLE_BASE_URL = env_optional_str("GOOGLE_BASE_URL")
OPENROUTER_API_KEY = env_str("OPENROUTER_API_KEY")
OPENROUTER_BASE_URL = env_str("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
OPENROUTER_APP_URL = env_str("OPENROUTER_APP_URL", "http://localhost:8000")
OPENROUTER_APP_TITLE = env_str("OPENROUTER_APP_TITLE", APP_NAME)
# The offline demo-quality model; on by default so a fresh machine can answer.
LOCAL_MODEL_ENABLED = env_bool("LOCAL_MODEL_ENABLED", True)
PROVIDER_CONNECT_TIMEOUT = env_float("PROVIDER_CONNECT_TIMEOUT", 5.0, minimum=0.1)
PROVIDER_READ_TIMEOUT = env_float("PROVIDER_READ_TIMEOUT", 60.0, minimum=0.1)
PROVIDER_MAX_RETRIES = env_int("PROVIDER_MAX_RETRIES", 2, minimum=0)
PROVIDER_RETRY_BASE_DELAY = env_float("PROVIDER_RETRY_BASE_DELAY", 0.5, minimum=0.0)
PROVIDER_FALLBACKS = env_str("PROVIDER_FALLBACKS", "")
# auto: OpenAI text-embedding-3-small when OPENAI_API_KEY is set, else the local MiniLM.
EMBEDDING_PROVIDER = env_choice("EMBEDDING_PROVIDER", "auto", ("auto", "openai", "local"))

# ==================== Model defaults ====================
DEFAULT_MODEL_PROVIDER = env_str("DEFAULT_MODEL_PROVIDER", "openai")
DEFAULT_MODEL_NAME = env_str("DEFAULT_MODEL_NAME", "gpt-4o-mini")
# Names /v1 clients may use for models, listed in GET /v1/models:
# "fast=openai/gpt-4o-mini,smart=anthropic/claude-sonnet-4-5".
MODEL_ALIASES = env_str("MODEL_ALIASES", "")
try:
    parse_model_aliases(MODEL_ALIASES)  # a malformed entry stops start-up, naming it
except ValueError as exc:
    raise EnvError(str(exc)) from None
DEFAULT_TEMPERATURE = env_float("DEFAULT_TEMPERATURE", 0.7, minimum=0.0)
DEFAULT_MAX_TOKENS = env_int("DEFAULT_MAX_TOKENS", 1024, minimum=1)

# ==================== External services ====================
SERPAPI_KEY = env_str("SERPAPI_KEY")
SERPAPI_BASE_URL = env_str("SERPAPI_BASE_URL", "https://serpapi.com")

# ==================== Agents ====================
MEMORY_SUMMARY_INTERVAL = env_int("MEMORY_SUMMARY_INTERVAL", 4, minimum=1)
PRODUCT_SEARCH_MAX_RESULTS = env_int("PRODUCT_SEARCH_MAX_RESULTS", 1, minimum=1)

# ==================== File upload ====================
UPLOAD_DIR = BASE_DIR / env_str("UPLOAD_DIR", "uploads")
MAX_FILE_SIZE = env_int("MAX_FILE_SIZE", 10 * 1024 * 1024, minimum=1)
# Storage per owner (uploads + stored passage text) for keys and accounts whose own
# storage_mb is blank (`create_api_key --storage-mb N`, admin); 0: no limit.
DEFAULT_STORAGE_MB = env_int("DEFAULT_STORAGE_MB", 1024, minimum=0) or None
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# Fits a full event batch (500 events x 16 KB data).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY", 10 * 1024 * 1024, minimum=1024)
# Deepest nesting of arrays/objects accepted in a JSON body (MongoDB stores 100 levels).
MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 64, minimum=2)

# ==================== Documents (ask your documents) ====================
# Upload bytes go through Django's storage API ("uploads"), so a worker on another machine
# reads what the web process stored. Local disk under UPLOAD_DIR by default; the README
# shows S3-compatible storage with django-storages.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Local disk under UPLOAD_DIR (read when used, so a changed UPLOAD_DIR is followed).
    "uploads": {"BACKEND": "files.storage.UploadDirStorage"},
}
# A document with more pages, or more chunks once split, ends `failed` (nothing stored).
DOCUMENT_MAX_PAGES = env_int("DOCUMENT_MAX_PAGES", 500, minimum=1)
DOCUMENT_MAX_CHUNKS = env_int("DOCUMENT_MAX_CHUNKS", 5000, minimum=1)
# One file's whole ingestion (extract, chunk, embed): past it the file ends `failed`, which
# also stops decompression bombs. The Celery task's limits and the sweeper derive from it.
DOCUMENT_INGEST_TIMEOUT_S = env_float("DOCUMENT_INGEST_TIMEOUT_S", 300.0, minimum=1.0)
# A document still `pending` after this long was never taken by a worker: the sweeper fails it.
DOCUMENT_PENDING_TIMEOUT_S = env_float("DOCUMENT_PENDING_TIMEOUT_S", 3600.0, minimum=1.0)
# Decompression and expansion bombs: a DOCX whose ZIP members add up to more than this is
# refused from its directory, before parsing; no document may give more text than this.
DOCUMENT_MAX_UNZIPPED_MB = env_int("DOCUMENT_MAX_UNZIPPED_MB", 50, minimum=1)
# Text is extracted in a child process limited to this much address space (RLIMIT_AS) and
# killed at the file's deadline. 1 GB reads a 200-page PDF or a DOCX at the unzipped limit.
DOCUMENT_EXTRACT_MEMORY_MB = env_int("DOCUMENT_EXTRACT_MEMORY_MB", 1024, minimum=128)

# Retrieval (memory and documents) ranks by two signals, their scores fused:
# vector similarity and BM25 over the words (names, codes, numbers the embedder blurs).
# Either can be switched off; with one off the other ranks alone (files.hybrid_search).
RETRIEVAL_VECTOR = env_bool("RETRIEVAL_VECTOR", True)
RETRIEVAL_LEXICAL = env_bool("RETRIEVAL_LEXICAL", True)
# Each user's cached vectors are kept on disk here, so the first question after a restart
# loads them instead of reading the user's whole history (files.vector_snapshots). A
# cache beside the database, never trusted over it. Relative to the project; empty: off.
VECTOR_SNAPSHOT_DIR = env_str("VECTOR_SNAPSHOT_DIR", "var/vectors")

# ==================== CORS ====================
CORS_ALLOWED_ORIGINS = env_list("CORS_ORIGINS", ["http://localhost:3000", "http://localhost:8000"])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = ("authorization", "content-type", "last-event-id", "x-request-id")
CORS_EXPOSE_HEADERS = ("x-request-id",)

# ==================== Logging ====================
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOG_FILE = env_str("LOG_FILE", "var/log/app.log")
_LOG_HANDLERS = {"stdout": {"class": "logging.StreamHandler", "formatter": "json"}}
if LOG_FILE:
    _LOG_HANDLERS["file"] = {
        "()": "llmplatform.core.logging.make_file_handler",
        "path": str(BASE_DIR / LOG_FILE),
        "formatter": "json",
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "llmplatform.core.logging.JsonFormatter"}},
    # Scheduled sweeps that found nothing log at DEBUG (llmplatform/core/periodic_logging.py).
    "filters": {"quiet_idle_sweeps": {"()": "llmplatform.core.periodic_logging.QuietIdleSweeps"}},
    "handlers": _LOG_HANDLERS,
    "root": {"handlers": list(_LOG_HANDLERS), "level": LOG_LEVEL},
    "loggers": {
        # Django's own request logging duplicates our access log.
        "django.request": {"level": "ERROR"},
        "django.server": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # logs request URLs, which may carry keys
        "pymongo": {"level": "WARNING"},
        "celery.app.trace": {"filters": ["quiet_idle_sweeps"]},
    },
}

# ==================== Django ====================
INSTALLED_APPS = [
    "daphne",
    "llmplatform.apps.MongoAdminConfig",
    "llmplatform.apps.MongoAuthConfig",
    "llmplatform.apps.MongoContentTypesConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongodb_backend",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc from our own static files
    "channels",
    "llmplatform.core",
    "agents",
    "queries",
    "sessions.apps.ChatSessionsConfig",
    "analytics",
    "files",
    "products",
    "imports",
    "openai_compat",
    "evaluations",
    "chat",
]

MIDDLEWARE = [
    # Outermost: the latency it records is all of Django's.
    "llmplatform.core.metrics_http.RequestMetricsMiddleware",
    "llmplatform.core.middleware.RequestIdMiddleware",
    # A client's W3C traceparent is the parent of the spans a request starts.
    "llmplatform.core.tracing.TraceContextMiddleware",
    # Before SecurityMiddleware: X-Forwarded-Proto is believed only from TRUSTED_PROXIES.
    "llmplatform.core.middleware.TrustedProxyHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # WhiteNoise, streaming asynchronously under ASGI (no warning per static file).
    "llmplatform.core.static_files.AsyncStreamingWhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "llmplatform.core.middleware.JsonErrorMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
if not IS_PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on a missing root

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["llmplatform.core.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "llmplatform.core.json_body.DepthLimitedJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "llmplatform.core.exception_handler.application_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "llmplatform.core.schema.ApiAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": f"{APP_NAME} API",
    "DESCRIPTION": (
        "Multi-provider LLM chat API with agents, memory, sessions and experiments. "
        "Authenticate with `Authorization: Bearer <api key>` "
        "(create one with `python manage.py create_api_key --name NAME`)."
    ),
    "VERSION": APP_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fully offline: no badge from validator.swagger.io. ReDoc's page is our template
    # (templates/drf_spectacular/redoc.html): no Google Fonts, no Redocly logo.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {"EvaluationRunStatusEnum": "evaluations.models.EvaluationRun.Status"},
}

# "limits" holds what must never be evicted: limits, budgets, lock-outs
# (llmplatform/core/counter_store.py). On Redis every such key has a TTL and the server
# must not evict (maxmemory-policy noeviction; check warns llmplatform.W001 otherwise).
if REDIS_URL:
    _redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Deployments (and test runs) sharing one Redis keep their counters apart.
        "KEY_PREFIX": CELERY_KEY_PREFIX,
    }
    CACHES = {"default": _redis_cache, "limits": dict(_redis_cache)}
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # One document per counter in the project's database: shared by every process,
        # kept across restarts, never culled (the local-memory cache keeps 300 entries).
        "limits": {
            "BACKEND": "llmplatform.core.counter_store.MongoCounterCache",
            "LOCATION": "limit_counters",
        },
    }

# "This server does not support VectorSearchIndex": expected on the embedded server and
# self-hosted MongoDB; `manage.py setup_indexes` reports it instead, with what to do.
SILENCED_SYSTEM_CHECKS = ["mongodb.indexes.search.W001"]

# Development serves static files straight from the apps; production runs collectstatic.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
