"""The tests' own Django project: a page, views that show what the server did, the admin, a few media and static files.

The environment sets what a test varies: DJANGO_DEBUG (1 by default; 0 turns DEBUG off), DJANGO_ALLOWED_HOSTS (a
comma-separated list), DJANGO_DATABASE, DJANGO_STATIC_ROOT, DJANGO_MEDIA_ROOT, DJANGO_BREAK_WORKERS.
"""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent

# A worker of --workers fails to load the project while the file DJANGO_BREAK_WORKERS names exists: a broken deploy.
if os.environ.get("RUNCHERRYPY_WORKER") and Path(os.environ.get("DJANGO_BREAK_WORKERS") or "/nonexistent").exists():
    raise ImportError("the project is broken (DJANGO_BREAK_WORKERS exists)")

SECRET_KEY = "django-insecure-runcherrypy-tests-only"
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = [
    host for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if host
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "devserver",
    "tests.project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.project.urls"
WSGI_APPLICATION = "tests.project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DATABASE", PROJECT_DIR / "db.sqlite3"),
    }
}

USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT", PROJECT_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = os.environ.get("DJANGO_MEDIA_ROOT", PROJECT_DIR / "media")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
