"""Settings for the Circles server, read from the environment (django-environ).

Every setting an operator may change is an environment variable; the defaults are the
embedded mode of `make run`: SQLite, the in-memory channel layer and the in-process
executor. `docs/OPERATIONS.md` lists them all.
"""

import datetime
import sys
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from executor.redis_clients import RedisTarget, parse_sentinels

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set unless DEBUG=1")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# daphne's app turns `manage.py runserver` (`make run`) into its ASGI development server, and
# imports Twisted to do it: ~0.6 s and ~15 MiB in every process that loads it. Only that command's
# process needs it; uvicorn, daphne itself, the workers and the other commands start without.
DEVELOPMENT_SERVER = sys.argv[1:2] == ["runserver"]

INSTALLED_APPS = [
    *(["daphne"] if DEVELOPMENT_SERVER else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "circles",
    "executor",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the session and CSRF middleware, so they see every cookie and page (HTTP edges below).
    "circleproject.secure_cookies.SecureCookiesOnHttpsMiddleware",
    "circleproject.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # admin login throttling (HTTP edges below); last, as axes asks
]

ROOT_URLCONF = "circleproject.urls"
ASGI_APPLICATION = "circleproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep connections between requests (a new SQLite or PostgreSQL connection per sign-in was the
# largest cost of a sign-in, docs/BENCHMARKS.md); health checks replace ones that went stale.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the ASGI server read while a worker writes; synchronous=NORMAL drops the fsync per
    # commit (WAL stays consistent; a power cut may lose the last commits). IMMEDIATE transactions
    # take the write lock up front, so two workers wait on the timeout instead of failing "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# Redis through Sentinel (docs/OPERATIONS.md, "Redis failover"): the sentinels (host:port,
# comma-separated) and the name they know the master by. Every Redis client of the project then
# asks them where the master is and follows a failover by itself; REDIS_URL still gives the
# database number and the password (its host and port are not used). The sentinels' own password,
# if they require one (`requirepass` in sentinel.conf).
REDIS_SENTINELS = env.list("REDIS_SENTINELS", default=[])
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
if REDIS_SENTINELS and not (REDIS_URL and REDIS_SENTINEL_MASTER):
    raise ImproperlyConfigured("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER and REDIS_URL (db and password)")
CHANNEL_LAYERS: dict[str, dict[str, Any]]  # alias -> BACKEND and the backend's own CONFIG
CIRCLES_CHANNEL_LAYER_CONNECTIONS = env.int("CIRCLES_CHANNEL_LAYER_CONNECTIONS", default=4)
if CIRCLES_CHANNEL_LAYER_CONNECTIONS < 1:
    raise ImproperlyConfigured("CIRCLES_CHANNEL_LAYER_CONNECTIONS must be at least 1")
if REDIS_URL:
    try:
        _redis_target = RedisTarget(
            REDIS_URL, parse_sentinels(REDIS_SENTINELS), REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD
        )
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "executor.layer.ResilientRedisPubSubChannelLayer",
            # The same Redis once per pub/sub connection: channels-redis serializes every
            # subscribe, unsubscribe and publish of one connection on one lock (a publish holds
            # it for its round trip), and with a single one a reconnect storm of URL sign-ins
            # queued there until no WebSocket opened in time (docs/benchmarks/reconnect.md).
            # Channels are spread over them by name; pub/sub is server-wide, so a message
            # published on any connection reaches a subscriber on any other.
            "CONFIG": {"hosts": [_redis_target.layer_host()] * CIRCLES_CHANNEL_LAYER_CONNECTIONS},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Unset in development (WhiteNoise then serves from the apps and does not warn about a missing
# directory); production sets it and runs collectstatic (deploy/circles.env.example).
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
# WhiteNoise serves the admin's and the console's static files from the ASGI process; with
# finders on it needs no collectstatic (run it in production for compressed, cached files).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# --- HTTP edges: body caps, timeouts, cookies, CSP, admin sign-in (docs/OPERATIONS.md) --------

# Largest request body outside /webhooks/ (those use CIRCLES_WEBHOOK_MAX_BYTES): larger is 413,
# by Content-Length before the body is read, or while a chunked body arrives
# (circleproject/body_limits.py). Django's own default for DATA_UPLOAD_MAX_MEMORY_SIZE.
CIRCLES_HTTP_MAX_BODY_BYTES = env.int("CIRCLES_HTTP_MAX_BODY_BYTES", default=2_621_440)
# Longest wait for the next piece of a request body: then 408 and the connection is closed.
CIRCLES_HTTP_BODY_TIMEOUT_SECONDS = env.float("CIRCLES_HTTP_BODY_TIMEOUT_SECONDS", default=15.0)
# `python -m circleproject.serve` closes a connection whose request head (request line and
# headers) is not complete this many seconds after the connection or the request began.
CIRCLES_HTTP_HEADER_TIMEOUT_SECONDS = env.float("CIRCLES_HTTP_HEADER_TIMEOUT_SECONDS", default=15.0)

# Served over HTTPS only (behind nginx with TLS): session and CSRF cookies are always `Secure`.
# Without it, cookies are `Secure` on requests that came over HTTPS, which behind a proxy means
# X-Forwarded-Proto from CIRCLES_TRUSTED_PROXIES only (circleproject/secure_cookies.py).
CIRCLES_TLS = env.bool("CIRCLES_TLS", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = CIRCLES_TLS
# Sent on every response (circleproject/csp.py); the console and the admin use only their own
# static scripts and styles. Empty: no header.
CIRCLES_CONTENT_SECURITY_POLICY = env.str(
    "CIRCLES_CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)

# Admin sign-in throttling (django-axes): the LIMIT-th failed password from one client address, or
# for one username, and every attempt after it are answered 429 without checking the password,
# until COOLOFF seconds pass without a failure. Attempts are kept in the database (all processes).
INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out attempt before any hashing
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("CIRCLES_ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(seconds=env.int("CIRCLES_ADMIN_LOGIN_COOLOFF_SECONDS", default=900))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one alone locks out
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# The client address is REMOTE_ADDR, which the server sets from X-Forwarded-For only for
# CIRCLES_TRUSTED_PROXIES (never the headers themselves).
AXES_CLIENT_IP_CALLABLE = "circleproject.admin_login.client_address"

# --- The circle WebSocket endpoint -------------------------------------------------------

# Browsers must send an Origin from this list (host patterns as channels' OriginValidator
# takes them); by default the allowed hosts. Native clients send no Origin at all.
CIRCLES_ALLOWED_ORIGINS = env.list("CIRCLES_ALLOWED_ORIGINS", default=ALLOWED_HOSTS)
CIRCLES_ALLOW_MISSING_ORIGIN = env.bool("CIRCLES_ALLOW_MISSING_ORIGIN", default=True)
# The name the sign-in message shows to the person signing.
CIRCLES_SERVER_NAME = env.str("CIRCLES_SERVER_NAME", default=ALLOWED_HOSTS[0] if ALLOWED_HOSTS else "circles")
CIRCLES_NONCE_TTL_SECONDS = env.int("CIRCLES_NONCE_TTL_SECONDS", default=300)
CIRCLES_MAX_MESSAGE_BYTES = env.int("CIRCLES_MAX_MESSAGE_BYTES", default=64 * 1024)
CIRCLES_MAX_BATCH = env.int("CIRCLES_MAX_BATCH", default=20)
CIRCLES_MAX_IN_FLIGHT = env.int("CIRCLES_MAX_IN_FLIGHT", default=32)
CIRCLES_MAX_FAILED_AUTH = env.int("CIRCLES_MAX_FAILED_AUTH", default=5)
CIRCLES_RATE_PER_SECOND = env.float("CIRCLES_RATE_PER_SECOND", default=50.0)
CIRCLES_RATE_BURST = env.int("CIRCLES_RATE_BURST", default=100)
# Invalid frames (not JSON, binary, invalid request objects) one connection may send before
# close 4400; they also take tokens of the request rate. 0: no bound.
CIRCLES_MAX_INVALID_FRAMES = env.int("CIRCLES_MAX_INVALID_FRAMES", default=100)
# Per client address (resolved through CIRCLES_TRUSTED_PROXIES), so more sockets do not buy more:
# open circle WebSockets per ASGI process (over it: close 4429), and `authenticate` calls per
# minute (over it: -32029; counted in Redis across processes when REDIS_URL is set). 0: no limit.
CIRCLES_MAX_CONNECTIONS_PER_ADDRESS = env.int("CIRCLES_MAX_CONNECTIONS_PER_ADDRESS", default=64)
# Admission control (circles/admission.py): WebSocket connections per ASGI process between their
# handshake and their sign-in (or CIRCLES_PENDING_SIGN_IN_SECONDS, for one that never signs in);
# one more is refused at once, HTTP 503 with Retry-After, so that a reconnect storm's admitted
# sign-ins finish inside the clients' open timeout instead of all finishing too late. 0: no bound,
# the default: at 100 it refused ordinary bursts (200 clients opening at once), let 100 sockets that
# never sign in hold every place for 10 s, and the one 2,000-client storm measured with it came back
# slower (docs/benchmarks/reconnect.md); an operator who measures a gain turns it on.
CIRCLES_MAX_PENDING_SIGN_INS = env.int("CIRCLES_MAX_PENDING_SIGN_INS", default=0)
CIRCLES_PENDING_SIGN_IN_SECONDS = env.float("CIRCLES_PENDING_SIGN_IN_SECONDS", default=10.0)
CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE = env.int("CIRCLES_SIGN_INS_PER_ADDRESS_PER_MINUTE", default=60)
# GET /auth/nonce: nonces one client address may ask for per minute (over it: 429; counted in
# Redis across processes when REDIS_URL is set; 0: no limit), and in embedded mode the most
# unredeemed, unexpired nonces the process keeps (past it: 503).
CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE = env.int("CIRCLES_AUTH_NONCES_PER_ADDRESS_PER_MINUTE", default=30)
CIRCLES_AUTH_NONCE_MAX_ACTIVE = env.int("CIRCLES_AUTH_NONCE_MAX_ACTIVE", default=100_000)
CIRCLES_PLAY_TIMEOUT_MS = env.int("CIRCLES_PLAY_TIMEOUT_MS", default=10_000)
CIRCLES_PLAY_MAX_TIMEOUT_MS = env.int("CIRCLES_PLAY_MAX_TIMEOUT_MS", default=60_000)
# How long a looked-up active circle is trusted before a connect reads it again.
CIRCLES_CIRCLE_CACHE_SECONDS = env.float("CIRCLES_CIRCLE_CACHE_SECONDS", default=5.0)
# How long a signed-in member's role is trusted before `play` reads it again.
CIRCLES_ROLE_CACHE_SECONDS = env.float("CIRCLES_ROLE_CACHE_SECONDS", default=5.0)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django": {"level": "INFO"}},
}

# --- Scripts and the executor ----------------------------------------------------------------

# Limits of every script run (rhai.Engine keyword arguments); docs/SCRIPTING.md explains each.
CIRCLES_SCRIPT_LIMITS = {
    "max_operations": env.int("CIRCLES_SCRIPT_MAX_OPERATIONS", default=5_000_000),
    "timeout_ms": CIRCLES_PLAY_MAX_TIMEOUT_MS,
    "max_call_levels": env.int("CIRCLES_SCRIPT_MAX_CALL_LEVELS", default=48),
    "max_expr_depth": env.int("CIRCLES_SCRIPT_MAX_EXPR_DEPTH", default=64),
    "max_string_size": env.int("CIRCLES_SCRIPT_MAX_STRING_SIZE", default=1024 * 1024),
    "max_array_size": env.int("CIRCLES_SCRIPT_MAX_ARRAY_SIZE", default=100_000),
    "max_map_size": env.int("CIRCLES_SCRIPT_MAX_MAP_SIZE", default=10_000),
    "max_variables": env.int("CIRCLES_SCRIPT_MAX_VARIABLES", default=1_000),
    "max_functions": env.int("CIRCLES_SCRIPT_MAX_FUNCTIONS", default=200),
    "max_source_size": env.int("CIRCLES_SCRIPT_MAX_SOURCE_SIZE", default=CIRCLES_MAX_MESSAGE_BYTES),
    "max_output_size": env.int("CIRCLES_SCRIPT_MAX_OUTPUT_SIZE", default=64 * 1024),
    # Heap the run's values may hold at once; past it the run stops with kind `memory`.
    "max_memory_bytes": env.int("CIRCLES_SCRIPT_MAX_MEMORY_BYTES", default=256 * 1024 * 1024),
}
# A run's answer: its value as JSON and its printed output, each; past it, kind `result_size`.
CIRCLES_RESULT_MAX_BYTES = env.int("CIRCLES_RESULT_MAX_BYTES", default=1024 * 1024)
# The largest message a worker publishes on the channel layer (Redis disconnects a subscriber
# whose pubsub output buffer passes 32 MiB, or 8 MiB for 60 s, by default); past it, `result_size`.
CIRCLES_LAYER_MAX_MESSAGE_BYTES = env.int("CIRCLES_LAYER_MAX_MESSAGE_BYTES", default=4 * 1024 * 1024)
# What a ScriptRun row keeps of the script, output, value and logs, each (then cut, with a marker).
CIRCLES_RUN_RECORD_MAX_BYTES = env.int("CIRCLES_RUN_RECORD_MAX_BYTES", default=64 * 1024)
# Record caps: one value, and everything one circle stores.
CIRCLES_RECORD_MAX_BYTES = env.int("CIRCLES_RECORD_MAX_BYTES", default=64 * 1024)
CIRCLES_CIRCLE_MAX_BYTES = env.int("CIRCLES_CIRCLE_MAX_BYTES", default=50 * 1024 * 1024)
CIRCLES_LIST_MAX = env.int("CIRCLES_LIST_MAX", default=1000)
# Which runs get a ScriptRun row: all, errors (failed runs), webhooks (webhook runs and failed runs).
CIRCLES_RECORD_RUNS = env.str("CIRCLES_RECORD_RUNS", default="all")
if CIRCLES_RECORD_RUNS not in ("all", "errors", "webhooks"):
    raise ImproperlyConfigured("CIRCLES_RECORD_RUNS must be all, errors or webhooks")
# Embedded mode (no REDIS_URL): threads running scripts inside the ASGI process.
CIRCLES_LOCAL_EXECUTOR_THREADS = env.int("CIRCLES_LOCAL_EXECUTOR_THREADS", default=2)
# The Redis Stream queue (REDIS_URL set).
CIRCLES_QUEUE_STREAM = env.str("CIRCLES_QUEUE_STREAM", default="circles:jobs")
CIRCLES_QUEUE_GROUP = env.str("CIRCLES_QUEUE_GROUP", default="workers")
CIRCLES_QUEUE_MAX_LENGTH = env.int("CIRCLES_QUEUE_MAX_LENGTH", default=10_000)
CIRCLES_QUEUE_CLAIM_IDLE_MS = env.int("CIRCLES_QUEUE_CLAIM_IDLE_MS", default=30_000)
# Deliveries a job gets: each one after the first means a worker died (or hung) running it, so
# a job delivered once more is dead-lettered as `host` instead of killing the next worker too.
CIRCLES_QUEUE_MAX_DELIVERIES = env.int("CIRCLES_QUEUE_MAX_DELIVERIES", default=2)
# A worker replaces itself (the supervisor starts a fresh one) once runs left this much memory
# behind that nothing can free (reference cycles between closures; docs/SCRIPTING.md).
CIRCLES_WORKER_MAX_LEFT_BEHIND_BYTES = env.int("CIRCLES_WORKER_MAX_LEFT_BEHIND_BYTES", default=512 * 1024**2)
# Each caller's and circle's share of the executor (executor/shares.py): most `play` runs in
# flight (handed to the pool or the queue, not yet over) per signed-in key across all its
# connections and ASGI processes, and per circle; 0: no bound. A `play` over a share waits in its
# caller's own line and is answered -32029 if its deadline passes there. The caller default, 1,
# keeps one member from holding more than one thread (of the 2 embedded threads) or worker: keep
# it below CIRCLES_LOCAL_EXECUTOR_THREADS or the worker processes, so other members find one free.
CIRCLES_MAX_RUNS_PER_CALLER = env.int("CIRCLES_MAX_RUNS_PER_CALLER", default=1)
# Per circle: by default the embedded pool's threads, or 8 runs with REDIS_URL (set it below the
# worker processes so one circle's members cannot hold every worker between them).
CIRCLES_MAX_RUNS_PER_CIRCLE = env.int(
    "CIRCLES_MAX_RUNS_PER_CIRCLE", default=8 if REDIS_URL else CIRCLES_LOCAL_EXECUTOR_THREADS
)
# Most `play` requests of one key waiting in its line (executor/lines.py), per ASGI process; one
# more is answered -32029 "too many plays waiting for this key" instead of waiting for its
# deadline (a flood's excess is refused as it arrives, not all together when its deadlines pass).
# The default is one connection's requests in flight, so one connection's pipelined plays always
# fit; only a key playing from many connections at once reaches it. 0: no bound.
CIRCLES_MAX_WAITING_PER_CALLER = env.int("CIRCLES_MAX_WAITING_PER_CALLER", default=CIRCLES_MAX_IN_FLIGHT)
# Those refusals are answered at once up to this many per second per key (per ASGI process); past
# that rate each is held for a random part, at least half, of its play's remaining time
# (executor/refusal_pace.py), so a client that resends each refused play at once can neither turn
# them into a request storm nor get them back as one batch. 0: all at once.
CIRCLES_LINE_REFUSALS_PER_SECOND = env.float("CIRCLES_LINE_REFUSALS_PER_SECOND", default=20.0)

# --- Jobs: long-running scripts created, started, watched and stopped over the socket ----------
# (docs/PROTOCOL.md, "Jobs"; executor/job_store.py). A job's timeout in seconds: default and cap.
CIRCLES_JOBS_TIMEOUT_DEFAULT_SECONDS = env.int("CIRCLES_JOBS_TIMEOUT_DEFAULT_SECONDS", default=300)
CIRCLES_JOBS_TIMEOUT_MAX_SECONDS = env.int("CIRCLES_JOBS_TIMEOUT_MAX_SECONDS", default=3600)
# Rhai operations one job run may take (play's is CIRCLES_SCRIPT_MAX_OPERATIONS).
CIRCLES_JOBS_MAX_OPERATIONS = env.int("CIRCLES_JOBS_MAX_OPERATIONS", default=10**12)
# What a job keeps of what its script prints (past it the logs end with a marker).
CIRCLES_JOBS_MAX_LOG_BYTES = env.int("CIRCLES_JOBS_MAX_LOG_BYTES", default=1024 * 1024)
# A job's script source, in bytes.
CIRCLES_JOBS_MAX_SCRIPT_BYTES = env.int("CIRCLES_JOBS_MAX_SCRIPT_BYTES", default=CIRCLES_MAX_MESSAGE_BYTES)
# env_vars: names, and bytes of one value.
CIRCLES_JOBS_MAX_ENV_VARS = env.int("CIRCLES_JOBS_MAX_ENV_VARS", default=32)
CIRCLES_JOBS_MAX_ENV_VALUE_BYTES = env.int("CIRCLES_JOBS_MAX_ENV_VALUE_BYTES", default=4096)
CIRCLES_JOBS_MAX_PREREQUISITES = env.int("CIRCLES_JOBS_MAX_PREREQUISITES", default=16)
# Jobs one caller may have dispatched or started at once, in a circle (over it: -32029).
CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER = env.int("CIRCLES_JOBS_MAX_ACTIVE_PER_CALLER", default=8)
# `manage.py prune_jobs` deletes jobs that ended longer ago than this.
CIRCLES_JOBS_RETENTION_DAYS = env.int("CIRCLES_JOBS_RETENTION_DAYS", default=30)
# The jobs' own Redis Stream: `rhai_worker --job-slots N` processes read only it, so long jobs
# never take the workers `play` runs on.
CIRCLES_JOBS_STREAM = env.str("CIRCLES_JOBS_STREAM", default=CIRCLES_QUEUE_STREAM + ":long")
# Embedded mode: threads of the in-process executor kept for jobs (beside the play threads).
CIRCLES_LOCAL_JOB_THREADS = env.int("CIRCLES_LOCAL_JOB_THREADS", default=1)
# Threads an ASGI process runs the jobs' database calls on (circles/job_db.py; PostgreSQL only,
# SQLite keeps them on the process's one database thread; 0: there too). Each holds a connection.
CIRCLES_JOBS_DB_THREADS = env.int("CIRCLES_JOBS_DB_THREADS", default=4)
# Each caller's and circle's share of the job slots (executor/job_shares.py): most job runs one
# caller has queued or running at once in a circle, and one circle; 0: no bound. A run over a
# share is not refused: its job stays `dispatched` until a place frees. Keep the caller's below
# the job slots (`rhai_worker --job-slots` over every worker host) so others always find one.
CIRCLES_JOBS_MAX_RUNNING_PER_CALLER = env.int("CIRCLES_JOBS_MAX_RUNNING_PER_CALLER", default=2)
CIRCLES_JOBS_MAX_RUNNING_PER_CIRCLE = env.int("CIRCLES_JOBS_MAX_RUNNING_PER_CIRCLE", default=8)
# Live records (the change log, circles.changes): kept per circle by count and by age, pruned by
# `manage.py prune_changes`; an ASGI process also checks the log of the circles its clients watch
# this often, so a change whose pub/sub message was lost reaches them anyway.
CIRCLES_CHANGES_KEEP_PER_CIRCLE = env.int("CIRCLES_CHANGES_KEEP_PER_CIRCLE", default=10_000)
CIRCLES_CHANGES_KEEP_DAYS = env.int("CIRCLES_CHANGES_KEEP_DAYS", default=7)
CIRCLES_CHANGES_CHECK_SECONDS = env.float("CIRCLES_CHANGES_CHECK_SECONDS", default=2.0)
# The garbage collector's thresholds in every server process (`gc.set_threshold`; "" keeps
# CPython's 700,10,10): young collections rarer, so a fan-out to many connections does not
# promote its short-lived objects into the old generation and trigger full collections
# (circleproject/gc_tuning.py, docs/benchmarks/live.md).
CIRCLES_GC_THRESHOLDS = env.str("CIRCLES_GC_THRESHOLDS", default="10000,20,10")
# Subscriptions (the `subscribe` method): per connection, and the notifications a connection may
# leave unsent before it is closed with 4408.
CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION = env.int("CIRCLES_MAX_SUBSCRIPTIONS_PER_CONNECTION", default=32)
CIRCLES_MAX_UNREAD_NOTIFICATIONS = env.int("CIRCLES_MAX_UNREAD_NOTIFICATIONS", default=1000)

# --- Provider webhooks (the webhooks app; docs/WEBHOOKS.md) -----------------------------------
# Everything below belongs to `POST /webhooks/{provider}/{circle_pk}` and its processing.

INSTALLED_APPS += ["rest_framework", "webhooks"]

# Fallback signing secrets, used for any circle without a WebhookEndpoint row of its own (or
# with a blank secret there): a single-tenant setup needs no admin step. Unset: the provider
# answers 404 for circles that have no endpoint configured.
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
IDENFY_WEBHOOK_SECRET = env.str("IDENFY_WEBHOOK_SECRET", default="")
# Provider modules (each exposes PROVIDER); a third provider is one more module here.
CIRCLES_WEBHOOK_PROVIDERS = env.list(
    "CIRCLES_WEBHOOK_PROVIDERS", default=["webhooks.providers.stripe", "webhooks.providers.idenfy"]
)
# Larger bodies are answered 413 (1 MiB by default).
CIRCLES_WEBHOOK_MAX_BYTES = env.int("CIRCLES_WEBHOOK_MAX_BYTES", default=1024 * 1024)
# Signed events nested deeper than this (dicts and lists) are answered 400 and never queued: the
# script's EVENT could not hold them (capped by the engine's max_value_depth, 64; webhooks/payload_depth.py).
CIRCLES_WEBHOOK_MAX_DEPTH = env.int("CIRCLES_WEBHOOK_MAX_DEPTH", default=64)
# Proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated); empty: none.
CIRCLES_TRUSTED_PROXIES = env.list("CIRCLES_TRUSTED_PROXIES", default=[])
# A failed handler run is retried after base * 2^(n-1) seconds (capped), up to MAX_ATTEMPTS runs.
CIRCLES_WEBHOOK_MAX_ATTEMPTS = env.int("CIRCLES_WEBHOOK_MAX_ATTEMPTS", default=5)
CIRCLES_WEBHOOK_RETRY_BASE_SECONDS = env.float("CIRCLES_WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
CIRCLES_WEBHOOK_RETRY_MAX_SECONDS = env.float("CIRCLES_WEBHOOK_RETRY_MAX_SECONDS", default=3600.0)
# A queued event whose job has not reported back after this long is presumed lost and queued again.
CIRCLES_WEBHOOK_LEASE_SECONDS = env.int("CIRCLES_WEBHOOK_LEASE_SECONDS", default=900)
# Rejected requests and duplicate deliveries kept per circle and provider per minute (then only
# logged), and the bytes of body kept for each.
CIRCLES_WEBHOOK_NOISE_PER_MINUTE = env.int("CIRCLES_WEBHOOK_NOISE_PER_MINUTE", default=30)
CIRCLES_WEBHOOK_NOISE_BODY_BYTES = env.int("CIRCLES_WEBHOOK_NOISE_BODY_BYTES", default=1024)
# How often the sweep queues due events: in workers (CIRCLES_WORKER_PERIODIC) and, without
# REDIS_URL, in a timer thread of the ASGI process started when the application loads.
CIRCLES_WEBHOOK_SWEEP_SECONDS = env.float("CIRCLES_WEBHOOK_SWEEP_SECONDS", default=2.0)
CIRCLES_WEBHOOK_LOCAL_SWEEPER = env.bool("CIRCLES_WEBHOOK_LOCAL_SWEEPER", default=True)
# Executor extension points (executor/hooks.py): what runs after a job with an event_id, and what
# every worker runs every CIRCLES_WORKER_PERIODIC_SECONDS.
CIRCLES_JOB_FINISHED_HOOKS = env.list(
    "CIRCLES_JOB_FINISHED_HOOKS", default=["webhooks.processing.job_finished"]
)
# The failover check goes first, so the sweep right after it queues again what a new Redis
# master lost (webhooks/failover.py).
CIRCLES_WORKER_PERIODIC = env.list(
    "CIRCLES_WORKER_PERIODIC",
    default=["webhooks.failover.requeue_after_master_change", "webhooks.processing.sweep"],
)
CIRCLES_WORKER_PERIODIC_SECONDS = CIRCLES_WEBHOOK_SWEEP_SECONDS
# Threads of the ASGI process that verify, record and queue deliveries (they keep their DB connections).
CIRCLES_WEBHOOK_DB_THREADS = env.int("CIRCLES_WEBHOOK_DB_THREADS", default=4)

# --- Health, metrics and graceful shutdown (docs/OPERATIONS.md) -----------------
# Who may read /metrics: addresses in these networks (IPs or CIDRs; the client address as
# resolved through CIRCLES_TRUSTED_PROXIES), or any client sending `Authorization: Bearer TOKEN`.
CIRCLES_METRICS_ALLOWED_IPS = env.list("CIRCLES_METRICS_ALLOWED_IPS", default=["127.0.0.1/32", "::1/128"])
CIRCLES_METRICS_TOKEN = env.str("CIRCLES_METRICS_TOKEN", default="")
# /readyz fails when no worker wrote a heartbeat within this many seconds (the key's TTL).
CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS = env.int("CIRCLES_WORKER_HEARTBEAT_TTL_SECONDS", default=15)
# On SIGTERM (circleproject.serve), how long in-flight requests may run before the 1001 close.
CIRCLES_SHUTDOWN_GRACE_SECONDS = env.float("CIRCLES_SHUTDOWN_GRACE_SECONDS", default=10.0)
