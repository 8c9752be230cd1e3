"""What ``runcherrypy`` mounts beside the Django application, read from the settings.

This is the one module that reads ``django.conf.settings`` for file serving; the handlers it builds take plain
arguments. Its own settings, all optional:

- ``RUNCHERRYPY_STATIC_MAX_AGE``: seconds a browser may keep a static file without asking again (default 0 under
  DEBUG, so every change shows at once, else 60). 0 means ``Cache-Control: no-cache``: revalidate every time,
  which costs a 304.
- ``RUNCHERRYPY_IMMUTABLE_FILE_TEST``: which static files never change and get
  ``Cache-Control: max-age=31536000, immutable``: a callable taking the path below STATIC_URL, or a regular
  expression searched in it. Default: names carrying ManifestStaticFilesStorage's content hash
  (``css/base.27e20196a850.css``).
- ``RUNCHERRYPY_MEDIA_CACHE_CONTROL``: Cache-Control of media files, which users upload and may replace under the
  same name (default ``no-cache``: revalidate on every request).
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured

from .media import FinderHandler, MediaHandler, hashed_name

__all__ = ["Mount", "file_mounts", "media_options", "static_options", "url_prefix"]


@dataclass(frozen=True)
class Mount:
    """One entry of the server's ``PathInfoDispatcher``.

    ``prefix``: the SCRIPT_NAME the application is mounted at, without a trailing slash (``"/media"``), or
    ``None`` when it is not mounted; ``app``: the WSGI application, or ``None``; ``source``: what it serves, or why
    it is not mounted, for the banner.
    """

    setting: str
    prefix: str | None
    app: object
    source: str

    @property
    def url(self):
        return None if self.prefix is None else self.prefix + "/"


def url_prefix(url):
    """Return ``(prefix, reason)`` for a MEDIA_URL or STATIC_URL value.

    ``prefix`` is the URL's path without its trailing slash (``"/static/"`` gives ``"/static"``); it is ``None``
    when the URL cannot be served here, and ``reason`` says why: empty, an absolute URL served elsewhere (a CDN),
    or ``/``, which would hide the Django application.
    """
    if not url:
        return None, "not set"
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None, f"{url!r} is an absolute URL, served elsewhere"
    prefix = parts.path.rstrip("/")
    if not prefix:
        return None, f"{url!r} would hide the Django application"
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix, None


def static_options():
    """``FileHandler`` keyword arguments for static files, from the settings above."""
    max_age = getattr(settings, "RUNCHERRYPY_STATIC_MAX_AGE", 0 if settings.DEBUG else 60)
    if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0:
        raise ImproperlyConfigured(f"RUNCHERRYPY_STATIC_MAX_AGE must be a whole number of seconds, got {max_age!r}.")
    immutable = getattr(settings, "RUNCHERRYPY_IMMUTABLE_FILE_TEST", hashed_name)
    if isinstance(immutable, str):
        try:
            immutable = re.compile(immutable).search
        except re.error as error:
            raise ImproperlyConfigured(
                f"RUNCHERRYPY_IMMUTABLE_FILE_TEST is not a valid regular expression: {error}."
            ) from None
    elif immutable is not None and not callable(immutable):
        raise ImproperlyConfigured("RUNCHERRYPY_IMMUTABLE_FILE_TEST must be a callable or a regular expression.")
    return {"cache_control": f"max-age={max_age}, public" if max_age else "no-cache", "immutable": immutable}


def media_options():
    """``FileHandler`` keyword arguments for media files, from the settings above."""
    cache_control = getattr(settings, "RUNCHERRYPY_MEDIA_CACHE_CONTROL", "no-cache")
    if cache_control is not None and not isinstance(cache_control, str):
        raise ImproperlyConfigured("RUNCHERRYPY_MEDIA_CACHE_CONTROL must be a string or None.")
    return {"cache_control": cache_control or None}


def _mount(setting, url, make_app, source):
    prefix, reason = url_prefix(url)
    if prefix is None:
        return Mount(setting, None, None, f"not served: {setting} {reason}")
    return Mount(setting, prefix, make_app(), source)


def file_mounts(*, serve_static=True, insecure=False):
    """Return the ``Mount`` for MEDIA_URL and the one for STATIC_URL, in that order.

    Media files come from MEDIA_ROOT. Static files come from the staticfiles finders when DEBUG is on or
    ``insecure`` is true, as ``runserver`` serves them (no ``collectstatic`` needed), and from STATIC_ROOT
    otherwise; ``serve_static=False`` leaves STATIC_URL unmounted.
    """
    if settings.MEDIA_ROOT:
        media = _mount(
            "MEDIA_URL",
            settings.MEDIA_URL,
            lambda: MediaHandler(settings.MEDIA_ROOT, **media_options()),
            f"MEDIA_ROOT {settings.MEDIA_ROOT}",
        )
    else:
        media = Mount("MEDIA_URL", None, None, "not served: MEDIA_ROOT not set")

    if not serve_static:
        static = Mount("STATIC_URL", None, None, "not served: --nostatic")
    elif settings.DEBUG or insecure:
        static = _mount(
            "STATIC_URL",
            settings.STATIC_URL,
            lambda: FinderHandler(finders.find, **static_options()),
            "staticfiles finders",
        )
    elif settings.STATIC_ROOT:
        static = _mount(
            "STATIC_URL",
            settings.STATIC_URL,
            lambda: MediaHandler(settings.STATIC_ROOT, **static_options()),
            f"STATIC_ROOT {settings.STATIC_ROOT}",
        )
    else:
        static = Mount(
            "STATIC_URL", None, None, "not served: DEBUG is off and STATIC_ROOT is not set (or use --insecure)"
        )
    return [media, static]
