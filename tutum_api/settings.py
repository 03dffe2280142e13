"""Django settings. Every deployment knob is an environment variable; the README lists them with defaults."""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TUTUM_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)
# Metrics from every process (gunicorn workers, Celery workers) meet in one directory; prometheus_client reads
# this variable when it is first imported, so it is set here, before anything imports it.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated setting as a list of its non-empty items."""
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def embedded_process() -> bool:
    """Whether this process may use a key of its own making: `make run` (`manage.py runstack`), the tests (pytest
    sets PYTEST_VERSION for its run), or a process started with TUTUM_EMBEDDED=1."""
    runstack = len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" and sys.argv[1] == "runstack"
    return runstack or bool(os.environ.get("PYTEST_VERSION")) or env_bool("TUTUM_EMBEDDED", False)


def embedded_secret_key(path: Path, make=None) -> str:
    """The key kept in `path` (mode 0600), generated on first use (`make()`, a Django secret key by default).
    Processes starting at once all get the first one written: the file appears whole (a hard link to a finished
    temporary file) or not at all."""
    if not path.exists():
        if make is None:
            from django.core.management.utils import get_random_secret_key as make

        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(make() + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: use its key
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty; delete it to have a new key generated, or set DJANGO_SECRET_KEY.")
    return key


# No default anyone could read here: with a known key, anyone can forge sessions (the dashboard's) and signed
# values. Production sets DJANGO_SECRET_KEY; `make run` and the tests keep a generated one in var/secret_key.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not embedded_process():
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random value, e.g.\n"
            "  export DJANGO_SECRET_KEY=\"$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')\"\n"
            "(docker compose: put it in .env). `make run` and the tests need none: they keep a generated key in "
            "var/secret_key, which TUTUM_EMBEDDED=1 gives to any other process on this checkout."
        )
    SECRET_KEY = embedded_secret_key(VAR_DIR / "secret_key")
    # What this process starts (runstack's web server and workers, the tests' servers) inherits the environment:
    # they sign with this same key, whatever var dir they are given.
    os.environ["DJANGO_SECRET_KEY"] = SECRET_KEY
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [host for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",") if host]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "nodeclusters",
    "providers",
]

MIDDLEWARE = [
    # First, like the front end it stands in for: every other middleware and the URL resolver see one path.
    "nodeclusters.api.parsers.MergeSlashesMiddleware",
    "tutum_api.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from gunicorn too, so `make run` and the compose stack need no web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "nodeclusters.api.parsers.ApiRequestMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tutum_api.urls"
WSGI_APPLICATION = "tutum_api.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "tutum_api" / "templates"],
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

# SQLite (the embedded default) or PostgreSQL, chosen by DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker write to one file: WAL lets readers run beside a writer, IMMEDIATE
    # transactions take the write lock up front instead of failing a lock upgrade half-way through.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_NAME") or None}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the installed apps: no collectstatic step to forget.
WHITENOISE_USE_FINDERS = True

# A JSON body of more than this many bytes is refused with 413 before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 256 * 1024)

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"]}
        if os.environ.get("REDIS_URL")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["nodeclusters.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["nodeclusters.api.parsers.TutumJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["drf_orjson_renderer.renderers.ORJSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "nodeclusters.api.pagination.TastypiePagination",
    "DEFAULT_FILTER_BACKENDS": ["nodeclusters.api.filters.FilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["nodeclusters.api.authentication.ApiKeyRateThrottle"],
    "EXCEPTION_HANDLER": "nodeclusters.api.errors.tutum_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Proxies in front of the server that append the client's address to X-Forwarded-For. 0 (the default) trusts
    # no X-Forwarded-For at all: throttles count per REMOTE_ADDR, so a client cannot pick its own address.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "PAGE_SIZE": 25,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tutum node cluster API",
    "DESCRIPTION": (
        "A self-hostable server for Tutum's node cluster API. Lists are Tastypie pages, dates RFC 2822 in UTC, "
        "references resource URIs, and every error body is JSON with an `error` string."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "NodeClusterStateEnum": "nodeclusters.choices.NodeClusterState",
        "NodeStateEnum": "nodeclusters.choices.NodeState",
        "ActionStateEnum": "nodeclusters.choices.ActionState",
        "EventTypeEnum": "nodeclusters.choices.EventType",
        "WebhookDeliveryStateEnum": "nodeclusters.choices.WebhookDeliveryState",
        "ReasonCodeEnum": "nodeclusters.choices.ReasonCode",
        "StepKindEnum": "nodeclusters.choices.StepKind",
        "StepStateEnum": "nodeclusters.choices.StepState",
    },
}
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 1000)
# Requests per API key, e.g. "1200/min"; empty turns throttling off.
API_THROTTLE_RATE = os.environ.get("API_THROTTLE_RATE", "1200/min")
MAX_NODES_PER_CLUSTER = env_int("MAX_NODES_PER_CLUSTER", 1000)

# Celery: at-least-once delivery. Messages are hints; the periodic sweep is what guarantees convergence.
# The embedded default broker is a SQLite file under var/ through kombu's SQLAlchemy transport with the changes
# of tutum_api/broker.py (WAL, consumed rows deleted, undecodable rows moved aside): a message is a committed row,
# so no process can read half of one, which kombu's filesystem transport allowed (celery/kombu#1551) and which
# took the worker down. Any `sqla+` URL gets that transport; Redis stays the production broker.
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL")
    or os.environ.get("REDIS_URL")
    or f"sqla+sqlite:///{(VAR_DIR / 'broker.sqlite3').resolve()}"
)
if CELERY_BROKER_URL.startswith(("sqla+", "sqlalchemy+")):
    # kombu would take the `sqla+` prefix as the name of its own transport over an explicit one; without it,
    # the URL is what SQLAlchemy's create_engine() expects.
    CELERY_BROKER_URL = CELERY_BROKER_URL.split("+", 1)[1]
    CELERY_BROKER_TRANSPORT = "tutum_api.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Seconds an idle consumer waits between polls (kombu's default is 1 s): a poll finding nothing is one
        # indexed read without a lock, so a task waits at most this long for a worker to see it.
        "polling_interval": env_float("CELERY_BROKER_POLLING_INTERVAL", 0.1),
    }
elif CELERY_BROKER_URL == "filesystem://":
    # Still accepted (the broker benchmark compares against it), but a reader can see a half-written message.
    _broker_folder = VAR_DIR / "broker"
    (_broker_folder / "queue").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_folder / "queue"),
        "data_folder_out": str(_broker_folder / "queue"),
        # Exchange bindings; kombu's default is ./control, in whatever directory the process started.
        "control_folder": str(_broker_folder / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than the longest task (hard limit below) so a slow task is not delivered twice, short enough
        # that a task lost with a killed worker comes back in minutes.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300),
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request that commits while the broker is down must answer quickly (the sweep enqueues its work later),
# so publishing gives up after about two seconds instead of Celery's default retries.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# No global time limits: the threads pool the worker runs enforces none. Each task declares its own (they hold in
# a prefork pool), and every driver call carries network timeouts of its own, which is what bounds a step here.
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup would close every database connection around every task; tutum_api/celery.py manages
# them per task the way Django does per request instead, so this only stops the fixup from doing it.
CELERY_DB_REUSE_MAX = 10**9
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Engine tuning.
ENGINE_SWEEP_INTERVAL = env_float("ENGINE_SWEEP_INTERVAL", 15.0)
ENGINE_POLL_INTERVAL = env_float("ENGINE_POLL_INTERVAL", 2.0)
ENGINE_HEALTH_CHECK_INTERVAL = env_float("ENGINE_HEALTH_CHECK_INTERVAL", 300.0)
ENGINE_STUCK_AFTER = env_float("ENGINE_STUCK_AFTER", 60.0)

# Providers: the catalog's provider names map to driver classes. SIMULATE_PROVIDERS serves them all from the
# simulated cloud so the reference's examples run without a cloud account.
SIMULATE_PROVIDERS = env_bool("SIMULATE_PROVIDERS", True)
PROVIDER_DRIVERS = {
    "aws": "providers.aws.AWSDriver",
    "digitalocean": "providers.digitalocean.DigitalOceanDriver",
    "local": "providers.simulated.SimulatedDriver",
}
# Tag value that marks cloud instances as made by this server, so two servers sharing an account never
# adopt or reap each other's instances.
PROVIDER_OWNER_TAG = os.environ.get("PROVIDER_OWNER_TAG", "tutum-api")
SIMULATED_BOOT_SECONDS = env_float("SIMULATED_BOOT_SECONDS", 2.0)
SIMULATED_FAILURE_RATE = env_float("SIMULATED_FAILURE_RATE", 0.0)
SIMULATED_SEED = os.environ.get("SIMULATED_SEED", "")
# Live instances each simulated account may have (0: no limit), like DigitalOcean's droplet limit.
SIMULATED_NODE_LIMIT = env_int("SIMULATED_NODE_LIMIT", 0)
AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
AWS_DEFAULT_AMI = os.environ.get("AWS_DEFAULT_AMI", "")
# JSON object {"region": "ami-..."}; regions not listed use AWS_DEFAULT_AMI, else the region's current Ubuntu LTS
# AMI read from AWS's public SSM parameter. A cluster's provider_options {"ami": ...} overrides both.
AWS_AMIS = os.environ.get("AWS_AMIS", "{}")
# The regions the AWS catalog sync reads (comma-separated); empty: the AWS regions already in the catalog.
AWS_CATALOG_REGIONS = env_list("AWS_CATALOG_REGIONS", [])
# The instance types it keeps, as patterns (comma-separated, e.g. "t3.*,m7g.*"); empty: every type offered.
AWS_CATALOG_INSTANCE_TYPES = env_list("AWS_CATALOG_INSTANCE_TYPES", [])
DIGITALOCEAN_TOKEN = os.environ.get("DIGITALOCEAN_TOKEN", "")
DIGITALOCEAN_IMAGE = os.environ.get("DIGITALOCEAN_IMAGE", "ubuntu-24-04-x64")
# Where the DigitalOcean driver sends its API calls (a test double, a proxy); DigitalOcean's own API when unset.
DIGITALOCEAN_API_URL = os.environ.get("DIGITALOCEAN_API_URL") or None

# Each user's own cloud accounts (PUT /api/v1/provider/<name>/credentials/). The operator's credentials above serve
# the catalog sync, and deploys only for the providers listed here ("*" for all): nothing else falls back to the
# operator's account. The simulated clouds are one shared account unless this is set.
SHARED_PROVIDER_ACCOUNTS = env_list("SHARED_PROVIDER_ACCOUNTS", ["*"] if SIMULATE_PROVIDERS else [])
# Fernet keys (comma-separated, newest first) that encrypt linked credentials and webhook secrets at rest; the
# first encrypts, all decrypt (`manage.py rotatecredentialskey` re-encrypts under the first). `make run` and the
# tests keep a generated key in var/credentials_key.
CREDENTIALS_KEYS = env_list("CREDENTIALS_KEYS", [])
if not CREDENTIALS_KEYS and embedded_process():

    def _fernet_key() -> str:
        from cryptography.fernet import Fernet

        return Fernet.generate_key().decode()

    CREDENTIALS_KEYS = [embedded_secret_key(VAR_DIR / "credentials_key", _fernet_key)]
    os.environ["CREDENTIALS_KEYS"] = CREDENTIALS_KEYS[0]  # for the processes this one starts, as DJANGO_SECRET_KEY
# Operator limits per user, checked before a create, deploy or scale is accepted (0: no limit).
MAX_NODES_PER_USER = env_int("MAX_NODES_PER_USER", 0)
MAX_CLUSTERS_PER_USER = env_int("MAX_CLUSTERS_PER_USER", 0)
CATALOG_SYNC_INTERVAL = env_float("CATALOG_SYNC_INTERVAL", 86400.0)

# JSON lines by default (LOG_FORMAT=plain for a terminal); engine lines carry node_cluster_uuid, node_uuid
# and action_uuid (see tutum_api/logging.py). Celery's INFO lines about each run of the housekeeping tasks beat runs
# every few seconds are left out, unless LOG_LEVEL=DEBUG; those tasks log what they did when they did something.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOG_ROUTINE_TASKS = [
    "nodeclusters.engine_sweep",
    "nodeclusters.reap_leaked_instances",
    "nodeclusters.update_state_gauges",
    "nodeclusters.webhooks_dispatch",
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "tutum_api.logging.ContextFilter"},
        "routine": {"()": "tutum_api.logging.RoutineTasksFilter", "tasks": LOG_ROUTINE_TASKS},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["context"] if LOG_LEVEL == "DEBUG" else ["context", "routine"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Node steps: how long one task may hold a node's provider lease, how long a deploy may stay pending, how many
# times a transient provider error is retried, and how many failed nodes one action may replace.
ENGINE_LEASE_SECONDS = env_float("ENGINE_LEASE_SECONDS", 90.0)
ENGINE_DEPLOY_TIMEOUT = env_float("ENGINE_DEPLOY_TIMEOUT", 900.0)
ENGINE_MAX_TRANSIENT_RETRIES = env_int("ENGINE_MAX_TRANSIENT_RETRIES", 8)
ENGINE_RETRY_BACKOFF_MAX = env_float("ENGINE_RETRY_BACKOFF_MAX", 60.0)
ENGINE_FAILURE_BUDGET = env_int("ENGINE_FAILURE_BUDGET", 0)  # 0: as many as the target (at least 3)
NODE_FQDN_DOMAIN = os.environ.get("NODE_FQDN_DOMAIN", "node.tutum.local")
NODE_DOCKER_VERSION = os.environ.get("NODE_DOCKER_VERSION", "1.9.1")
ENGINE_LEAK_SWEEP_INTERVAL = env_float("ENGINE_LEAK_SWEEP_INTERVAL", 60.0)
CELERY_BEAT_SCHEDULE = {
    "engine-sweep": {
        "task": "nodeclusters.engine_sweep",
        "schedule": ENGINE_SWEEP_INTERVAL,
        "options": {"expires": ENGINE_SWEEP_INTERVAL},
    },
    "reap-leaked-instances": {
        "task": "nodeclusters.reap_leaked_instances",
        "schedule": ENGINE_LEAK_SWEEP_INTERVAL,
        "options": {"expires": ENGINE_LEAK_SWEEP_INTERVAL},
    },
}

# The Stream API (websocket events and action logs, SSE): served by the ASGI stream server (`tutum_api.asgi`).
# Committed changes are announced on Redis where there is one (a wake-up only); stream servers also look at the
# outbox every STREAM_POLL_INTERVAL seconds, which is what the embedded default (no Redis) relies on.
STREAM_REDIS_URL = (
    os.environ.get("STREAM_REDIS_URL")
    or os.environ.get("REDIS_URL")
    or (CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else "")
)
STREAM_POLL_INTERVAL = env_float("STREAM_POLL_INTERVAL", 2.0 if STREAM_REDIS_URL else 0.25)
# How long events stay available to clients resuming with ?since= or Last-Event-ID.
STREAM_RETENTION_SECONDS = env_int("STREAM_RETENTION_SECONDS", 24 * 3600)
# Messages waiting for one slow connection before it is closed (a bounded queue, not unbounded memory).
STREAM_QUEUE_SIZE = env_int("STREAM_QUEUE_SIZE", 1000)
STREAM_SSE_HEARTBEAT_SECONDS = env_float("STREAM_SSE_HEARTBEAT_SECONDS", 15.0)
# Where clients reach the stream server (the REST host sends SSE clients there); runstack sets it.
STREAM_PUBLIC_URL = os.environ.get("STREAM_PUBLIC_URL", "http://127.0.0.1:8001")
CELERY_BEAT_SCHEDULE["prune-events"] = {
    "task": "nodeclusters.prune_events",
    "schedule": env_float("STREAM_PRUNE_INTERVAL", 3600.0),
    "options": {"expires": 600},
}

# Failed authentications per client address (nodeclusters.api.authentication): far fewer than requests, never
# more than API_THROTTLE_RATE; off with it. An address past the limit is refused before its credentials are checked.
API_FAILED_AUTH_RATE = os.environ.get("API_FAILED_AUTH_RATE", "30/min")
# The admin's one-time API key is a message: kept in the session (server side), never in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# With a token, /metrics answers only `Authorization: Bearer <token>`; empty leaves it open (the embedded default).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# /metrics' clusters and nodes by state are counted by this beat task, so a scrape costs no database query.
METRICS_STATE_INTERVAL = env_float("METRICS_STATE_INTERVAL", 30.0)
CELERY_BEAT_SCHEDULE["update-state-gauges"] = {
    "task": "nodeclusters.update_state_gauges",
    "schedule": METRICS_STATE_INTERVAL,
    "options": {"expires": METRICS_STATE_INTERVAL},
}
# The live catalog (nodeclusters.services.catalog_sync), with the operator's credentials, daily by default.
CELERY_BEAT_SCHEDULE["sync-catalog"] = {
    "task": "nodeclusters.sync_catalog",
    "schedule": CATALOG_SYNC_INTERVAL,
    "options": {"expires": 3600},
}

# Fair health checks (nodeclusters.tasks.engine_sweep): each sweep probes at most this many nodes, those due that
# were probed longest ago first; a node that fails its probes is asked again after the health check interval,
# doubled for each failure in a row, at most ENGINE_HEALTH_CHECK_BACKOFF_MAX seconds later.
ENGINE_HEALTH_CHECKS_PER_SWEEP = env_int("ENGINE_HEALTH_CHECKS_PER_SWEEP", 200)
ENGINE_HEALTH_CHECK_BACKOFF_MAX = env_float("ENGINE_HEALTH_CHECK_BACKOFF_MAX", 3600.0)

# Fleet-scale engine: when many nodes across the fleet wait for their instance, a reconcile hands the deploy steps of
# its nodes to one task per batch (`nodeclusters.deploy_nodes`, each node's step as ever, one after the other), which
# spares a Celery message and task per node. A batch holds at most ENGINE_DEPLOY_BATCH_MAX nodes, and never more
# than the nodes waiting per worker thread (ENGINE_DEPLOY_PARALLELISM, the threads of all workers): it takes no
# longer than the queue would have made its nodes wait anyway, and a lone cluster's nodes still go one per task.
ENGINE_DEPLOY_PARALLELISM = env_int("ENGINE_DEPLOY_PARALLELISM", env_int("WORKER_CONCURRENCY", 32))
ENGINE_DEPLOY_BATCH_MAX = env_int("ENGINE_DEPLOY_BATCH_MAX", 20)
# How long a worker process keeps the catalog rows its node steps read (names and sizes; nodeclusters.node_steps.
# catalog_rows) before reading them again; a row it does not know is read at once.
CATALOG_ROWS_SECONDS = env_float("CATALOG_ROWS_SECONDS", 60.0)

# Signed webhooks (nodeclusters.services.webhooks, webhook_delivery): beat turns new events into deliveries and sends
# those due every WEBHOOK_POLL_INTERVAL seconds, at most WEBHOOK_DELIVERIES_PER_RUN per task (a full run queues
# another). A POST waits WEBHOOK_TIMEOUT seconds for an answer; a failed one is retried after WEBHOOK_RETRY_BACKOFF
# seconds, doubling up to WEBHOOK_RETRY_BACKOFF_MAX, until the delivery is WEBHOOK_GIVE_UP_SECONDS old; a webhook
# whose every attempt failed for that long is disabled. Targets on private, loopback, link-local, multicast, reserved
# or unspecified addresses are refused unless WEBHOOK_ALLOW_PRIVATE_TARGETS (an operator's own network).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
WEBHOOK_POLL_INTERVAL = env_float("WEBHOOK_POLL_INTERVAL", 2.0)
WEBHOOK_DELIVERIES_PER_RUN = env_int("WEBHOOK_DELIVERIES_PER_RUN", 20)
WEBHOOK_TIMEOUT = env_float("WEBHOOK_TIMEOUT", 5.0)
WEBHOOK_RETRY_BACKOFF = env_float("WEBHOOK_RETRY_BACKOFF", 5.0)
WEBHOOK_RETRY_BACKOFF_MAX = env_float("WEBHOOK_RETRY_BACKOFF_MAX", 3600.0)
WEBHOOK_GIVE_UP_SECONDS = env_int("WEBHOOK_GIVE_UP_SECONDS", 24 * 3600)
# Finished deliveries stay listed (GET /api/v1/webhook/<uuid>/delivery/) this long; beat prunes them hourly.
WEBHOOK_RETENTION_SECONDS = env_int("WEBHOOK_RETENTION_SECONDS", 24 * 3600)
CELERY_BEAT_SCHEDULE["webhooks-dispatch"] = {
    "task": "nodeclusters.webhooks_dispatch",
    "schedule": WEBHOOK_POLL_INTERVAL,
    "options": {"expires": WEBHOOK_POLL_INTERVAL},
}
CELERY_BEAT_SCHEDULE["prune-webhook-deliveries"] = {
    "task": "nodeclusters.prune_webhook_deliveries",
    "schedule": env_float("WEBHOOK_PRUNE_INTERVAL", 3600.0),
    "options": {"expires": 600},
}

# Idempotency keys (nodeclusters.api.idempotency): a write's answer is replayed for a repeat of its Idempotency-Key
# for IDEMPOTENCY_KEY_SECONDS; a key whose request has not answered after IDEMPOTENCY_RUNNING_SECONDS (its process
# died) is free again. Beat prunes expired keys hourly.
IDEMPOTENCY_KEY_SECONDS = env_int("IDEMPOTENCY_KEY_SECONDS", 24 * 3600)
IDEMPOTENCY_RUNNING_SECONDS = env_int("IDEMPOTENCY_RUNNING_SECONDS", 300)
CELERY_BEAT_SCHEDULE["prune-idempotency-keys"] = {
    "task": "nodeclusters.prune_idempotency_keys",
    "schedule": env_float("IDEMPOTENCY_PRUNE_INTERVAL", 3600.0),
    "options": {"expires": 600},
}
