"""The sample project's settings as bench/run.py serves them: DEBUG off, static files from BENCH_STATIC_ROOT
(collected) or through the finders from BENCH_STATIC_DIR, no access log (gunicorn and nginx keep none either),
and WhiteNoise's middleware when BENCH_WHITENOISE=1."""

import os

from cherrytest.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.urls"  # the sample's URLs and /hello/
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
STATICFILES_DIRS = [os.environ["BENCH_STATIC_DIR"]]
DATABASES["default"]["NAME"] = os.environ["BENCH_DATABASE"]  # noqa: F405

if os.environ.get("BENCH_WHITENOISE") == "1":
    MIDDLEWARE = ["whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE]  # noqa: F405

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django.server": {"level": "WARNING"}},
}
