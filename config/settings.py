"""Settings for every environment, read from environment variables (twelve-factor).

`.env.example` lists every variable. When DATABASE_URL / REDIS_URL are unset, the values written
by the zero-setup stack (`python -m config.stack`, i.e. `make run`) in `.run/env` are used, so a
second terminal's `manage.py` talks to the same embedded servers.
"""

import os
from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("RUN_DIR", BASE_DIR / ".run"))


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values


_STACK_ENV = _read_env_file(RUN_DIR / "env")


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value in (None, ""):
        value = _STACK_ENV.get(name, default)
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment "
            "(or DEBUG=1 for local development with an insecure key)."
        )
    SECRET_KEY = "django-insecure-local-development-only"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "django_htmx",
    "template_partials",
    "pgtrigger",
    "locations",
    "chargers",
    "bookings",
    "ocpi",
    "api",
    "monitoring",
    "django_prometheus",
]

MIDDLEWARE = [
    # Requests by view and status for /metrics (django-prometheus: first and last).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "bookings.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

# Database: PostgreSQL only (the no-overlap rule is an exclusion constraint).
DATABASE_URL = env("DATABASE_URL")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set and no zero-setup stack is running. "
        "Start one with `make run` (or `.venv/bin/python -m config.stack up`), "
        "or set DATABASE_URL=postgres://user@host:5432/dbname."
    )
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "Only PostgreSQL is supported (DATABASE_URL must be postgres://...)."
    )
# Server-side parameter binding, and psycopg's prepared statements: a statement that has run
# `prepare_threshold` times on a connection is prepared there, and PostgreSQL stops parsing and
# planning it on every call (docs/adr/0003-prepared-statements-and-hot-reads.md). Prepared
# statements live in the server session: direct or session-pooled connections only
# (docs/operations.md).
_PREPARE = (env("DATABASE_PREPARE_THRESHOLD", "5") or "5").strip().lower()
DATABASES["default"].setdefault("OPTIONS", {}).update(
    server_side_binding=True,
    prepare_threshold=None if _PREPARE in {"none", "off"} else int(_PREPARE),
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: Celery broker and the worker-to-csms command bus.
REDIS_URL = env("REDIS_URL")
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set and no zero-setup stack is running. "
        "Start one with `make run`, or set REDIS_URL=redis://host:6379/0."
    )


def _celery_broker_url(redis_url: str) -> str:
    # redis-py spells a socket `unix:///path?db=N`; kombu wants `redis+socket:///path?virtual_host=N`.
    if redis_url.startswith("unix://"):
        path, _, query = redis_url.removeprefix("unix://").partition("?")
        db = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("db", "0")
        return f"redis+socket://{quote(path)}?virtual_host={db}"
    return redis_url


CELERY_BROKER_URL = _celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Every task has a time limit: at the soft one it gets SoftTimeLimitExceeded and can let go of
# what it holds, at the hard one its worker process is replaced. Tasks that talk to partners
# set their own (ocpi/tasks.py). What a stopped task left undone, a sweep finds again.
CELERY_TASK_SOFT_TIME_LIMIT = 120
CELERY_TASK_TIME_LIMIT = 150
# Calls to eMSPs have their own queue and workers (the Procfile's `ocpi`), so a slow partner
# never delays charger work (ReserveNow, sweeps) on the default queue.
OCPI_QUEUE = "ocpi"
CELERY_TASK_ROUTES = {
    "ocpi.tasks.push_deliver_task": {"queue": OCPI_QUEUE},
    "ocpi.tasks.command_result_task": {"queue": OCPI_QUEUE},
}
# Sweeps: the database says what is due (bookings/sweeps.py); seconds between runs.
CELERY_BEAT_SCHEDULE: dict = {
    "sweep-reservations": {"task": "bookings.tasks.sweep_reservations_task", "schedule": 15.0},
    "sweep-no-shows": {"task": "bookings.tasks.sweep_no_shows_task", "schedule": 30.0},
    "sweep-undecided": {"task": "bookings.tasks.sweep_undecided_task", "schedule": 60.0},
    "mark-lost-connections": {
        "task": "chargers.tasks.mark_lost_connections_task",
        "schedule": 60.0,
    },
    # OCPI outbox: audit rows -> pushes to eMSPs, retries that came due (ocpi.push).
    "sweep-remote-commands": {
        "task": "chargers.tasks.sweep_remote_commands_task",
        "schedule": 15.0,
    },
    "ocpi-push-sweep": {"task": "ocpi.tasks.push_sweep_task", "schedule": 15.0},
    "ocpi-command-results": {"task": "ocpi.tasks.command_results_sweep_task", "schedule": 30.0},
    # Operator API webhooks: the same audit rows -> deliveries to clients (api.webhooks).
    "api-webhook-sweep": {"task": "api.tasks.webhook_sweep_task", "schedule": 10.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(RUN_DIR / "celerybeat-schedule")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / ".run" / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "login"
CSRF_FAILURE_VIEW = "bookings.views.csrf_failure"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Production hardening: on unless DEBUG; TLS-terminating proxies set X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Probes and scrapers may speak plain HTTP to a web process directly.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]

# Health and metrics (monitoring; docs/operations.md). Readiness fails when the newest finished
# sweep is older than this (the most frequent sweeps run every 10-15 s); each check has this
# long to answer.
HEALTH_SWEEP_MAX_AGE_SECONDS = float(env("HEALTH_SWEEP_MAX_AGE_SECONDS", "120"))
HEALTH_CHECK_TIMEOUT_SECONDS = float(env("HEALTH_CHECK_TIMEOUT_SECONDS", "5"))
# Who may read /metrics: a Bearer token and/or client networks (CIDR, comma-separated); with
# neither, /metrics answers 404 unless DEBUG.
METRICS_TOKEN = env("METRICS_TOKEN", "") or ""
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chargebook OCPI 2.3.0-booking-1.0 (CPO)",
    "VERSION": "2.3.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # This default document is OCPI's; the operator API's has its own (api.schema).
    "PREPROCESSING_HOOKS": ["ocpi.schema.ocpi_paths_only"],
    # /api/docs/ serves Swagger UI from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The operator REST API (/api/v1/): OAuth2 client credentials (django-oauth-toolkit), each
# client's scopes from its api.Client row; rate limits per client and scope (partners.ratelimit).
OAUTH2_PROVIDER = {
    "SCOPES": {
        "read": "Read locations, availability, own requests, bookings and drivers",
        "book": "Send booking requests and connector reservations",
        "drivers": "Create drivers and see every driver",
        "webhooks": "Manage webhook subscriptions",
    },
    "SCOPES_BACKEND_CLASS": "api.scopes.ClientScopes",
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(env("API_TOKEN_LIFETIME_SECONDS", "3600")),
    # The OAuth 2.0 Security BCP (RFC 9700), as the toolkit's deploy checks ask: tokens stored
    # hashed, Bearer tokens in the header only, no implicit or password grants, https only.
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}
# Named so that the api app's ForeignKey to it migrates (the toolkit's swappable setting).
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}
# Redis keys of the rate-limit counters of the operator API and OCPI (partners.ratelimit).
RATELIMIT_KEY_PREFIX = "cb:rl"
# Requests per minute per client and scope (read, book, drivers, webhooks), and per eMSP party
# over all of OCPI; a client's or party's own limit in the admin replaces these.
API_RATE_LIMIT_PER_MINUTE = int(env("API_RATE_LIMIT_PER_MINUTE", "300"))
OCPI_RATE_LIMIT_PER_MINUTE = int(env("OCPI_RATE_LIMIT_PER_MINUTE", "600"))

# Our own identity and public addresses.
OCPI_COUNTRY_CODE = (env("OCPI_COUNTRY_CODE", "NL") or "NL").upper()
OCPI_PARTY_ID = (env("OCPI_PARTY_ID", "CBK") or "CBK").upper()
# The currency of a session no tariff prices (OCPI Sessions and CDRs always name one).
DEFAULT_CURRENCY = (env("DEFAULT_CURRENCY", "EUR") or "EUR").upper()
# A running session is pushed to its eMSP at most once per this many seconds as its meter moves
# (its start and end are always pushed at once).
OCPI_SESSION_PUSH_INTERVAL_SECONDS = int(env("OCPI_SESSION_PUSH_INTERVAL_SECONDS", "60"))
PUBLIC_BASE_URL = (env("PUBLIC_BASE_URL", "http://127.0.0.1:8000") or "").rstrip("/")
PORT = int(env("PORT", "8000"))
CSMS_HOST = env("CSMS_HOST", "127.0.0.1")
CSMS_PORT = int(env("CSMS_PORT", "9000"))
CSMS_PUBLIC_URL = env("CSMS_PUBLIC_URL", f"ws://{CSMS_HOST}:{CSMS_PORT}/ocpp")
CSMS_BUS_PREFIX = env("CSMS_BUS_PREFIX", "cb:csms")  # Redis keys of the worker-to-csms bus
# Each csms serves its own Prometheus metrics here (0: none); keep it off the public network.
CSMS_METRICS_PORT = int(env("CSMS_METRICS_PORT", "0"))
CSMS_METRICS_HOST = env("CSMS_METRICS_HOST", "127.0.0.1")
CSMS_COMMAND_TIMEOUT_SECONDS = float(env("CSMS_COMMAND_TIMEOUT_SECONDS", "15"))
CSMS_HEARTBEAT_INTERVAL_SECONDS = int(env("CSMS_HEARTBEAT_INTERVAL_SECONDS", "300"))
# Calls to partners' servers (OCPI parties, webhook receivers; partners/outbound.py): the whole of
# one call, lookup to last byte, in seconds; and whether the URLs they give us may point at
# loopback, private or link-local addresses (only for development and tests, where partners run
# on this machine).
OUTBOUND_HTTP_DEADLINE_SECONDS = float(env("OUTBOUND_HTTP_DEADLINE_SECONDS", "20"))
OUTBOUND_ALLOW_PRIVATE_URLS = env_bool("OUTBOUND_ALLOW_PRIVATE_URLS", DEBUG)
# Charge points without a password are refused unless this is on (development only).
CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD = env_bool("CSMS_ALLOW_CHARGERS_WITHOUT_PASSWORD", False)
# Failed handshakes allowed per charge point id and per client address (`limits` notation),
# per csms process; past them the handshake answers 429 until the window moves on.
CSMS_AUTH_FAILURES_PER_ID = env("CSMS_AUTH_FAILURES_PER_ID", "10/minute")
CSMS_AUTH_FAILURES_PER_ADDRESS = env("CSMS_AUTH_FAILURES_PER_ADDRESS", "30/minute")
BOOKING_PENDING_TIMEOUT_SECONDS = int(env("BOOKING_PENDING_TIMEOUT_SECONDS", "300"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Every OCPP frame and WebSocket handshake at INFO is too much with thousands of chargers.
        "ocpp": {"level": env("OCPP_LOG_LEVEL", "WARNING")},
        "websockets": {"level": "WARNING"},
    },
}
