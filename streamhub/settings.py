"""StreamHub settings, all from environment variables (a `.env` file is read if present).

Every setting has a working default for one machine: SQLite, local Redis, media under ./var/.
`DATABASE_URL` and `REDIS_URL` move a deployment onto PostgreSQL and a shared Redis.
"""

import socket
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from streamhub.dev_secrets import DEV_OME_ACCESS_TOKEN, DEV_SECRET_KEY

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Production mode refuses to start with development secrets or DEBUG (see the checks below).
PRODUCTION = env.bool("STREAMHUB_PRODUCTION", default=False)
# DEBUG (tracebacks and route lists in answers) only when asked for: STREAMHUB_DEBUG=1 in the
# environment or `.env` (DJANGO_DEBUG, its older name, still works).
DEBUG = env.bool("STREAMHUB_DEBUG", default=env.bool("DJANGO_DEBUG", default=False))

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"])

# The OME v1 API's <AccessToken>: clients send `Authorization: Basic base64(token)`.
OME_ACCESS_TOKEN = env.str("OME_ACCESS_TOKEN", default="" if PRODUCTION else DEV_OME_ACCESS_TOKEN)

if PRODUCTION:
    if not OME_ACCESS_TOKEN:
        raise ImproperlyConfigured("STREAMHUB_PRODUCTION is set but OME_ACCESS_TOKEN is not: refusing to start.")
    if OME_ACCESS_TOKEN == DEV_OME_ACCESS_TOKEN:
        raise ImproperlyConfigured(
            "STREAMHUB_PRODUCTION is set but OME_ACCESS_TOKEN is the development token: refusing to start."
        )
    if SECRET_KEY == DEV_SECRET_KEY:
        raise ImproperlyConfigured("STREAMHUB_PRODUCTION is set but DJANGO_SECRET_KEY is not: refusing to start.")
    if DEBUG:
        raise ImproperlyConfigured("STREAMHUB_PRODUCTION is set and so is STREAMHUB_DEBUG: refusing to start.")

# Security headers (what `manage.py check --deploy` asks for). STREAMHUB_HTTPS says the admin and the
# APIs are reached over HTTPS (on in production): cookies only travel encrypted and browsers are told
# to use HTTPS from then on (HSTS, sent on HTTPS answers only).
HTTPS = env.bool("STREAMHUB_HTTPS", default=PRODUCTION)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("STREAMHUB_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("STREAMHUB_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("STREAMHUB_HSTS_PRELOAD", default=HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients): trust it.
if env.bool("STREAMHUB_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# No redirect to HTTPS by default: OME and WCS clients call the plain API port (8081) and a redirect
# would turn their POSTs into failures. STREAMHUB_SSL_REDIRECT=1 when only browsers use this server.
SECURE_SSL_REDIRECT = env.bool("STREAMHUB_SSL_REDIRECT", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_SSL_REDIRECT else ["security.W008"]

INSTALLED_APPS = [
    "daphne",
    "apps.dashboard",
    # Django's admin on the console's site: the home page's models grouped by purpose (apps/dashboard/site.py);
    # the home page's template (the live dashboard above the groups) is templates/admin/index.html.
    "apps.dashboard.site.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "apps.hosting",
    "apps.engine",
    "apps.streams",
    "apps.jobs",
    "apps.recording",
    "apps.push",
    "apps.pull",
    "apps.webrtc_relay",
    "apps.hls_dump",
    "apps.cdn",
    "apps.api_ome",
    "apps.connections",
    "apps.api_wcs",
    "apps.access",
    "apps.async_jobs",
    "apps.api_wcs_v3",
    "apps.metrics",
    "apps.transcoding",
    "apps.multi_recorder",
    "apps.mixing",
    "apps.security",
    "apps.calls",
]

# Under Daphne, Django's classes here run as their event-loop versions (streamhub/inline_middleware.py,
# loaded by streamhub/asgi_handler.py): Django would hop to a thread for every hook of every request.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Async-capable (like every middleware here), so WCS v3 calls await their jobs without holding a thread.
    "streamhub.middleware.WhiteNoiseMiddleware",
    "apps.api_wcs.middleware.WcsCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "streamhub.urls"
ASGI_APPLICATION = "streamhub.asgi.application"
WSGI_APPLICATION = None

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
        },
    },
]

MEDIA_ROOT = Path(env.str("STREAMHUB_MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
# Absolute folders besides the media root that API calls may write into (OME :startHlsDump's
# outputPath/infoFile, e.g. the spec's "/tmp/"), comma-separated; empty: the media root only.
EXTRA_OUTPUT_ROOTS = env.list("STREAMHUB_EXTRA_OUTPUT_ROOTS", default=[])
VAR_DIR = Path(env.str("STREAMHUB_VAR_DIR", default=str(BASE_DIR / "var")))
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)  # SQLite file and WhiteNoise's root live here

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'streamhub.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (API server, engine, workers) share the file: wait for locks instead of failing
    # (a transaction takes the write lock when it begins, since SQLite cannot wait for a read lock to
    # become a write lock), and let readers read while one writes (WAL). In WAL mode synchronous=NORMAL
    # syncs to disk at checkpoints instead of every commit (the engine commits every heartbeat); the
    # file stays consistent, a power cut may lose the last commits (counters, as a heartbeat later).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Database connections are kept between requests (each API request thread is a kept one, see
# streamhub/asgi_handler.py) for this many seconds (0: a new connection per request), checked before reuse.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("STREAMHUB_DB_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Separate prefixes keep test runs (or several platforms on one Redis) apart.
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("STREAMHUB_CHANNELS_PREFIX", default="asgi")},
    }
}
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Long media jobs and short control tasks never share a queue (a busy media queue delays no API call).
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {
    "apps.recording.tasks.*": {"queue": "media"},
    "apps.push.tasks.*": {"queue": "media"},
    "apps.pull.tasks.*": {"queue": "media"},
    "apps.streams.tasks.*": {"queue": "media"},
    "apps.hls_dump.tasks.*": {"queue": "media"},
    "apps.multi_recorder.tasks.*": {"queue": "media"},
    "apps.calls.tasks.*": {"queue": "media"},
    # CPU-bound encodes get workers of their own: a busy transcode never delays a record or push.
    "apps.transcoding.tasks.*": {"queue": "transcode"},
    "apps.mixing.tasks.*": {"queue": "transcode"},
    # WCS v3 jobs only call services (the media work they start goes to `media`).
    "apps.async_jobs.tasks.*": {"queue": "control"},
}
# How long OME's "Create Stream (Pull)" waits for the pull to go live (201) or fail (502); a pull
# still connecting after that is answered 201 and goes on.
PULL_CREATE_WAIT_SECONDS = env.float("STREAMHUB_PULL_CREATE_WAIT", default=10.0)
# A running media job renews its lease every few seconds; one silent for longer lost its worker
# (killed, machine gone) and is started again by `resume_orphaned_jobs` (every JOB_RECOVERY_INTERVAL).
JOB_LEASE_SECONDS = env.float("STREAMHUB_JOB_LEASE", default=15.0)
JOB_RECOVERY_INTERVAL = env.float("STREAMHUB_JOB_RECOVERY_INTERVAL", default=5.0)
# Stopped and errored media job rows (records, pushes, pulls...) are pruned this many days after they
# finished, checked every JOB_PRUNE_INTERVAL seconds; their files stay.
JOB_HISTORY_DAYS = env.float("STREAMHUB_JOB_HISTORY_DAYS", default=7.0)
JOB_PRUNE_INTERVAL = env.float("STREAMHUB_JOB_PRUNE_INTERVAL", default=3600.0)
if JOB_HISTORY_DAYS < 0 or JOB_PRUNE_INTERVAL <= 0:
    raise ImproperlyConfigured("STREAMHUB_JOB_HISTORY_DAYS must be >= 0 and STREAMHUB_JOB_PRUNE_INTERVAL > 0.")
CELERY_BEAT_SCHEDULE = {
    "resume-orphaned-jobs": {"task": "apps.jobs.tasks.resume_orphaned_jobs", "schedule": JOB_RECOVERY_INTERVAL},
    "prune-finished-media-jobs": {"task": "apps.jobs.tasks.prune_finished_jobs", "schedule": JOB_PRUNE_INTERVAL},
    # API jobs (WCS v3): a safety net for deadlines whose task was lost, and pruning of old finished jobs.
    "cancel-overdue-async-jobs": {"task": "apps.async_jobs.tasks.cancel_overdue_jobs", "schedule": 10.0},
    "prune-finished-async-jobs": {
        "task": "apps.async_jobs.tasks.prune_finished_jobs",
        "schedule": env.float("STREAMHUB_ASYNC_JOBS_PRUNE_INTERVAL", default=600.0),
    },
}
# A media job outlives Redis's default 1 h visibility timeout; a dead worker's job is redelivered after it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=43200)}
# Several StreamHub installations on one Redis (test platforms, staging beside production) need
# their own queues: otherwise one's worker takes the other's tasks and finds no such job.
if env.str("STREAMHUB_CELERY_PREFIX", default=""):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env.str("STREAMHUB_CELERY_PREFIX")

# The media engine node of this process (`manage.py runengine`) and how nodes find each other.
ENGINE_NODE_ID = env.str("STREAMHUB_NODE_ID", default=socket.gethostname())
# Where Celery workers and other nodes reach this node (loopback when all run on one machine).
ENGINE_NODE_ADDRESS = env.str("STREAMHUB_NODE_ADDRESS", default="127.0.0.1")
ENGINE_RTMP_HOST = env.str("STREAMHUB_RTMP_HOST", default="0.0.0.0")
ENGINE_RTMP_PORT = env.int("STREAMHUB_RTMP_PORT", default=1935)
ENGINE_HTTP_HOST = env.str("STREAMHUB_MEDIA_HTTP_HOST", default="0.0.0.0")
ENGINE_HTTP_PORT = env.int("STREAMHUB_MEDIA_HTTP_PORT", default=3333)
# Engine worker processes behind the public ports (`runengine --processes`): "auto" = one per CPU; 1 =
# a single process with no other port. Each worker is a node of its own (`<node id>.<i>`) that also
# listens on private RTMP and HTTP ports on STREAMHUB_NODE_ADDRESS: any free port, or base + i when a
# base is set (for firewalls).
ENGINE_PROCESSES = env.str("STREAMHUB_ENGINE_PROCESSES", default="auto")
ENGINE_PRIVATE_RTMP_PORT = env.int("STREAMHUB_ENGINE_PRIVATE_RTMP_PORT", default=0)
ENGINE_PRIVATE_HTTP_PORT = env.int("STREAMHUB_ENGINE_PRIVATE_HTTP_PORT", default=0)
# Set by `make run` for its engine when nginx fronts the media port (scripts/media_front.py; README "HTTP
# viewers through nginx"): the secret nginx sends with the viewer's address (X-Real-IP, believed only with it)
# and the log of the answers nginx gave from its cache (read to count those viewers). Empty: no front.
ENGINE_HTTP_FRONT_TOKEN = env.str("STREAMHUB_MEDIA_FRONT_TOKEN", default="")
ENGINE_HTTP_FRONT_LOG = env.str("STREAMHUB_MEDIA_FRONT_LOG", default="")
# HTTPS of the media port (OME's TLSPort): open while a vhost has a certificate; 0 turns it off.
ENGINE_HTTPS_PORT = env.int("STREAMHUB_MEDIA_HTTPS_PORT", default=3334)
# HTTPS of the API (`manage.py runtlsproxy`, started by `make run`): OME's TLSPort and WCS's REST port,
# open while a vhost has a certificate (empty: off). The proxy hands the decrypted requests to the
# API server's loopback-only port API_TLS_UPSTREAM_PORT, whose requests count as HTTPS.
API_TLS_HOST = env.str("STREAMHUB_API_TLS_HOST", default="0.0.0.0")
API_TLS_PORTS = env.list("STREAMHUB_API_TLS_PORTS", cast=int, default=[8082, 8444])
API_TLS_UPSTREAM_PORT = env.int("STREAMHUB_API_TLS_UPSTREAM_PORT", default=8090)
# Limits on the media ports (README "Limits on the media ports"). Media HTTP: seconds from accept to a
# complete first request header, seconds an idle keep-alive connection is kept, open connections per
# engine process (a 503 beyond; never more than half the process's open-file limit; 0: that half).
ENGINE_HTTP_HEADER_TIMEOUT = env.float("STREAMHUB_MEDIA_HTTP_HEADER_TIMEOUT", default=10.0)
ENGINE_HTTP_KEEPALIVE_TIMEOUT = env.float("STREAMHUB_MEDIA_HTTP_KEEPALIVE_TIMEOUT", default=30.0)
ENGINE_HTTP_MAX_CONNECTIONS = env.int("STREAMHUB_MEDIA_HTTP_MAX_CONNECTIONS", default=10000)
# Seconds a client may leave its answer unread (socket buffer full) before it is dropped.
ENGINE_HTTP_SEND_TIMEOUT = env.float("STREAMHUB_MEDIA_HTTP_SEND_TIMEOUT", default=30.0)
# RTMP: the largest video message accepted (refused on its header, before anything is kept), bytes of
# incomplete messages per connection, and for all connections of the node (the ones holding the most
# are dropped beyond it).
ENGINE_RTMP_MAX_MESSAGE_BYTES = env.int("STREAMHUB_RTMP_MAX_MESSAGE_BYTES", default=8 * 1024 * 1024)
ENGINE_RTMP_MAX_PENDING_BYTES = env.int("STREAMHUB_RTMP_MAX_PENDING_BYTES", default=16 * 1024 * 1024)
ENGINE_RTMP_NODE_PENDING_BYTES = env.int("STREAMHUB_RTMP_NODE_PENDING_BYTES", default=256 * 1024 * 1024)
# RTMP connections per engine process (beyond: hung up at once; at most a quarter of the open-file limit; 0: no cap).
ENGINE_RTMP_MAX_CONNECTIONS = env.int("STREAMHUB_RTMP_MAX_CONNECTIONS", default=5000)
# SRT ingest (srt://host:port?streamid=vhost/app/stream, as OME); port 0 turns it off.
ENGINE_SRT_HOST = env.str("STREAMHUB_SRT_HOST", default="0.0.0.0")
ENGINE_SRT_PORT = env.int("STREAMHUB_SRT_PORT", default=9999)
# Admission webhooks (apps.access): timeout when the OME setting has none, and what a failed call means.
ACCESS_WEBHOOK_TIMEOUT_MS = env.int("STREAMHUB_ACCESS_WEBHOOK_TIMEOUT", default=3000)
ACCESS_WEBHOOK_DEFAULT_ACTION = env.str("STREAMHUB_ACCESS_WEBHOOK_DEFAULT", default="deny")
# The secret of internal job tokens (`shjob=`, media_engine.internal_auth) that let media jobs past access
# control; shared by engine nodes and workers. Empty: derived from SECRET_KEY. Tokens are good for
# (re)connecting for STREAMHUB_INTERNAL_TOKEN_TTL seconds after a job built its URL.
STREAMHUB_INTERNAL_SECRET = env.str("STREAMHUB_INTERNAL_SECRET", default="")
STREAMHUB_INTERNAL_TOKEN_TTL = env.int("STREAMHUB_INTERNAL_TOKEN_TTL", default=24 * 3600)
# Public base URL of the media HTTP port for player links (default: this host on the node's port).
STREAMHUB_MEDIA_URL = env.str("STREAMHUB_MEDIA_URL", default="")
ENGINE_HEARTBEAT_INTERVAL = env.float("STREAMHUB_ENGINE_HEARTBEAT", default=2.0)
# The node's role in an origin-edge cluster (README "Origin-edge cluster"): origin (takes publishes),
# edge (refuses publishes, plays any stream of the cluster by pulling it from its origin on the first
# viewer, the pull ending STREAMHUB_EDGE_LINGER s after the last one) or transcoder (CDN profiles).
ENGINE_NODE_ROLE = env.str("STREAMHUB_NODE_ROLE", default="origin").strip().lower()
if ENGINE_NODE_ROLE not in ("origin", "edge", "transcoder"):
    raise ImproperlyConfigured("STREAMHUB_NODE_ROLE must be origin, edge or transcoder")
ENGINE_EDGE_LINGER = env.float("STREAMHUB_EDGE_LINGER", default=10.0)
# How long a viewer of {stream}-{profile} on an edge waits for the CDN profile's transcode to start.
ENGINE_EDGE_TRANSCODE_WAIT = env.float("STREAMHUB_EDGE_TRANSCODE_WAIT", default=20.0)
# A CDN profile's transcode stops once no edge has pulled its rendition for this long (and nobody plays it).
ENGINE_EDGE_TRANSCODE_IDLE = env.float("STREAMHUB_EDGE_TRANSCODE_IDLE", default=30.0)
# A node silent for this many seconds is gone: its streams are marked ended.
ENGINE_NODE_TIMEOUT = env.float("STREAMHUB_ENGINE_NODE_TIMEOUT", default=15.0)
# HLS/LL-HLS segments and parts are files under this folder (out of the engine's heap); empty: a
# tmpfs (/dev/shm) when there is one, else the system's temporary folder. Packaging runs only for
# streams someone plays, and stops after STREAMHUB_HLS_IDLE_TIMEOUT seconds without a request; it
# starts from the stream's last STREAMHUB_HLS_HISTORY_SECONDS (files there too), so that a player's
# first playlist lists a window (0: from the last keyframe only).
ENGINE_HLS_FILES_DIR = env.str("STREAMHUB_HLS_FILES_DIR", default="")
ENGINE_HLS_IDLE_TIMEOUT = env.float("STREAMHUB_HLS_IDLE_TIMEOUT", default=30.0)
ENGINE_HLS_HISTORY_SECONDS = env.float("STREAMHUB_HLS_HISTORY_SECONDS", default=20.0)
# An HLS/LL-HLS viewer (WCS /hls/subscribers, the viewer counts) counts until this many seconds
# after its last request.
ENGINE_HLS_VIEWER_WINDOW = env.float("STREAMHUB_HLS_VIEWER_WINDOW", default=30.0)
if not ENGINE_HLS_VIEWER_WINDOW > 0:
    raise ImproperlyConfigured("STREAMHUB_HLS_VIEWER_WINDOW must be a number of seconds above 0.")
# WebRTC (WHIP/WHEP): host candidates on these addresses (comma-separated; empty: every interface
# but loopback), ICE over UDP ports in this range ("40000-40999"; empty: any port), STUN/TURN servers
# (comma-separated "stun:host:port", "turn:host:port?transport=udp") with the TURN credentials.
WEBRTC_ICE_ADDRESSES = env.list("STREAMHUB_WEBRTC_ICE_ADDRESSES", default=[])
WEBRTC_ICE_PORTS = env.str("STREAMHUB_WEBRTC_ICE_PORTS", default="")
WEBRTC_ICE_SERVERS = env.list("STREAMHUB_WEBRTC_ICE_SERVERS", default=[])
WEBRTC_TURN_USERNAME = env.str("STREAMHUB_WEBRTC_TURN_USERNAME", default="")
WEBRTC_TURN_CREDENTIAL = env.str("STREAMHUB_WEBRTC_TURN_CREDENTIAL", default="")
# Seconds between keyframe requests to WHIP publishers (HLS segments start on keyframes).
WEBRTC_KEYFRAME_INTERVAL = env.float("STREAMHUB_WEBRTC_KEYFRAME_INTERVAL", default=2.0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Daphne serves the admin's and Swagger UI's files itself (no CDN, no separate web server needed).
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    # DRF's choice of renderer, remembered per Accept header (streamhub/negotiation.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "streamhub.negotiation.RememberedContentNegotiation",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "StreamHub API",
    # The full text, and the order OME v1 → WCS v2 → WCS v3, come from streamhub/openapi.py's hook.
    "DESCRIPTION": "StreamHub's REST APIs: OME v1, WCS v2 and WCS v3.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "streamhub.openapi.order_dialects"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# WCS REST API v2 (/rest-api/...). WCS has no applications: its streams live in this one (vhost/app).
WCS_APPLICATION = env.str("STREAMHUB_WCS_APPLICATION", default="default/app")
# WCS's disable_rest_auth=false: HTTP Basic against Django users on every WCS method.
WCS_REST_AUTH = env.bool("STREAMHUB_WCS_REST_AUTH", default=False)
# WCS's rest_access_control_allow_* and rest_access_control_headers settings. ALLOW_ORIGIN is "*" or
# a comma-separated list of origins; with credentials allowed, the caller's Origin is echoed (a
# browser refuses "*" with credentials). Credentials are allowed by default when Basic auth is on.
WCS_CORS_ALLOW_ORIGIN = env.str("STREAMHUB_WCS_CORS_ALLOW_ORIGIN", default="*")
WCS_CORS_ALLOW_HEADERS = env.str(
    "STREAMHUB_WCS_CORS_ALLOW_HEADERS", default="origin,content-type,accept,x-requested-with,prefer,authorization"
)
WCS_CORS_ALLOW_METHODS = env.str("STREAMHUB_WCS_CORS_ALLOW_METHODS", default="GET,POST,OPTIONS")
WCS_CORS_ALLOW_CREDENTIALS = env.bool("STREAMHUB_WCS_CORS_ALLOW_CREDENTIALS", default=WCS_REST_AUTH)
WCS_CORS_EXPOSE_HEADERS = env.str("STREAMHUB_WCS_CORS_EXPOSE_HEADERS", default="Location,Preference-Applied")
# WCS application keys (appKey, WCS's default "defaultApp") -> StreamHub applications (vhost/app):
# "key=vhost/app" pairs, comma-separated. A stream reports the first key of its application; the
# /stream/* methods see the streams of every mapped application (and of WCS_APPLICATION).
WCS_APP_KEYS = dict(
    pair.split("=", 1) for pair in env.list("STREAMHUB_WCS_APP_KEYS", default=[f"defaultApp={WCS_APPLICATION}"])
)
# /mpegts/startup listens on a port of this range, on this address (where the media workers run),
# and hands the caller udp://ADVERTISED_HOST:port (default: the host name the call came to).
WCS_MPEGTS_HOST = env.str("STREAMHUB_WCS_MPEGTS_HOST", default="0.0.0.0")
WCS_MPEGTS_PORTS = tuple(env.list("STREAMHUB_WCS_MPEGTS_PORTS", cast=int, default=[31000, 31999]))
WCS_MPEGTS_ADVERTISED_HOST = env.str("STREAMHUB_WCS_MPEGTS_ADVERTISED_HOST", default="")
# A failed agent (/rtsp, /pull/rtmp, /vod, /mpegts) stays findable with status FAILED and its error
# for this many seconds after it failed.
WCS_FAILED_AGENT_KEEP_SECONDS = env.float("STREAMHUB_WCS_FAILED_AGENT_KEEP", default=300.0)

# WCS REST API v3 (/rest-api/v3/...): the server caps of `Prefer: respond-async, wait=N, timeout=M`
# (WCS's jobs_max_prefer_wait_time and jobs_max_prefer_timeout), used when a value is missing or larger.
WCS_JOBS_MAX_PREFER_WAIT_TIME = env.float("STREAMHUB_WCS_JOBS_MAX_PREFER_WAIT_TIME", default=5.0)
WCS_JOBS_MAX_PREFER_TIMEOUT = env.float("STREAMHUB_WCS_JOBS_MAX_PREFER_TIMEOUT", default=60.0)
# Finished API jobs are deleted after this many seconds (by the beat's prune task).
ASYNC_JOBS_KEEP_FINISHED_SECONDS = env.float("STREAMHUB_ASYNC_JOBS_KEEP_FINISHED", default=86400.0)

# Security (apps.security, README "Security"). Outgoing connections that API clients or settings name (pulls,
# pushes, WebRTC relays, admission webhooks) go to public addresses only, plus this allow-list (comma-separated
# CIDRs, addresses or host names; ".example.internal" allows every name under it), e.g. another node or a local
# nginx: "10.0.0.0/8,127.0.0.1,node2.example.internal".
OUTBOUND_ALLOW = env.list("STREAMHUB_OUTBOUND_ALLOW", default=[])
# Request bodies of /v1, /rest-api and /rest-api/v3 larger than this are answered 413 before they are read.
API_MAX_BODY_BYTES = env.int("STREAMHUB_API_MAX_BODY", default=4 * 1024 * 1024)
# JSON bodies nested deeper than this (objects and arrays) are answered 400.
API_MAX_JSON_DEPTH = env.int("STREAMHUB_API_MAX_JSON_DEPTH", default=64)
# Django's own cap on bodies it reads into memory must not answer before ours.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, API_MAX_BODY_BYTES)
# WCS /stream/event/send and /data/send: the largest payload relayed to subscribers (bytes of its JSON).
WCS_MAX_EVENT_PAYLOAD_BYTES = env.int("STREAMHUB_WCS_MAX_EVENT_PAYLOAD", default=64 * 1024)
# Requests one API process runs at once (the others wait their turn), and how long one may hold its turn
# before the next starts beside it (seconds; a view waiting on the engine or a slow client): see
# streamhub/asgi_handler.py.
API_REQUEST_SLOTS = env.int("STREAMHUB_API_REQUEST_SLOTS", default=2)
API_REQUEST_SLOT_HOLD = env.float("STREAMHUB_API_REQUEST_SLOT_HOLD", default=0.05)
# The address the API server listens on (scripts/run_platform.py reads the same variable): beyond loopback,
# an open WCS API (WCS_REST_AUTH off) is announced loudly at start.
API_HOST = env.str("STREAMHUB_API_HOST", default="0.0.0.0")

# SIP calls (WCS /call/*, apps.calls): the address the SIP agent binds its SIP and RTP sockets to
# ("" = every interface), the address it announces in SIP/SDP when behind NAT, and how long an
# ended call stays findable (/call/find) so a client can read how it ended.
SIP_BIND_HOST = env.str("STREAMHUB_SIP_BIND_HOST", default="")
SIP_PUBLIC_ADDRESS = env.str("STREAMHUB_SIP_PUBLIC_ADDRESS", default="")
SIP_CALL_HISTORY_SECONDS = env.float("STREAMHUB_SIP_CALL_HISTORY", default=300.0)
# Calls offer Opus in an audio line of the agent's own beside PJSIP's (which has no Opus), used when
# the far end takes both lines. Off by default: a far end that would take only one of them may take
# the Opus one, and PJSIP hangs up a call without an audio line of its own (media_engine/sip/opus.py).
SIP_OFFER_OPUS = env.bool("STREAMHUB_SIP_OFFER_OPUS", default=False)
# Each call's PJSIP log (VAR_DIR/sip/call-<id>.log): PJSIP's level (0-6; 4 and up show every SIP
# message), and the size at which it is rotated once (call-<id>.log.1), so a call keeps at most
# about twice that. Removed with the call's row (STREAMHUB_JOB_HISTORY_DAYS).
SIP_LOG_LEVEL = env.int("STREAMHUB_SIP_LOG_LEVEL", default=3)
SIP_LOG_MAX_BYTES = env.int("STREAMHUB_SIP_LOG_MAX_BYTES", default=1048576)
if not 0 <= SIP_LOG_LEVEL <= 6 or SIP_LOG_MAX_BYTES < 0:
    raise ImproperlyConfigured("STREAMHUB_SIP_LOG_LEVEL must be 0-6 and STREAMHUB_SIP_LOG_MAX_BYTES >= 0.")
