"""What ``runcherrypy`` mounts beside the Django application, read from the settings.

This is the one module that reads ``django.conf.settings`` for file serving; the handlers it builds take plain
arguments.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders

from .media import FinderHandler, MediaHandler

__all__ = ["Mount", "file_mounts", "url_prefix"]


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
            "MEDIA_URL", settings.MEDIA_URL, lambda: MediaHandler(settings.MEDIA_ROOT), f"MEDIA_ROOT {settings.MEDIA_ROOT}"
        )
    else:
        media = Mount("MEDIA_URL", None, None, "not served: MEDIA_ROOT not set")

    if not serve_static:
        static = Mount("STATIC_URL", None, None, "not served: --nostatic")
    elif settings.DEBUG or insecure:
        static = _mount("STATIC_URL", settings.STATIC_URL, lambda: FinderHandler(finders.find), "staticfiles finders")
    elif settings.STATIC_ROOT:
        static = _mount(
            "STATIC_URL",
            settings.STATIC_URL,
            lambda: MediaHandler(settings.STATIC_ROOT),
            f"STATIC_ROOT {settings.STATIC_ROOT}",
        )
    else:
        static = Mount("STATIC_URL", None, None, "not served: DEBUG is off and STATIC_ROOT is not set (or use --insecure)")
    return [media, static]
