"""What ``runcherrypy`` mounts beside the Django application, read from the settings.

This is the one module that reads ``django.conf.settings`` for file serving; the handlers it builds take plain
arguments. Its own settings (``RUNCHERRYPY_STATIC_MAX_AGE``, ``RUNCHERRYPY_IMMUTABLE_FILE_TEST``,
``RUNCHERRYPY_MEDIA_CACHE_CONTROL``) are declared, with their defaults, in ``devserver.options``.
"""

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured
from django.core.servers.basehttp import get_internal_wsgi_application

from .media import FinderHandler, MediaHandler
from .options import OptionError, resolve

__all__ = [
    "Mount",
    "build_application",
    "file_mounts",
    "link_roots",
    "media_options",
    "project_application",
    "static_options",
    "static_root_state",
    "url_prefix",
    "url_setting",
]


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


def url_setting(name):
    """MEDIA_URL or STATIC_URL for mounting, read without fixing its value for the process: Django prefixes a
    relative one with the script prefix of the request during which it is first read, and keeps that (a CGI script
    at ``/cgi-bin/site.cgi`` then links ``/cgi-bin/site.cgi/static/``); read here, before any request, it would
    keep ``/static/``. ``LazySettings.__setattr__`` drops its cached value the same way."""
    value = getattr(settings, name)
    settings.__dict__.pop(name, None)
    return value


def _settings_options(*names):
    try:
        return resolve(names, {}, settings)
    except OptionError as error:
        raise ImproperlyConfigured(str(error)) from None


def static_options():
    """``FileHandler`` keyword arguments for static files, from the settings above (``ImproperlyConfigured`` for
    a bad value)."""
    values = _settings_options("static_max_age", "immutable_file_test")
    max_age = values["static_max_age"]
    return {
        "cache_control": f"max-age={max_age}, public" if max_age else "no-cache",
        "immutable": values["immutable_file_test"],
    }


def media_options():
    """``FileHandler`` keyword arguments for media files, from the settings above."""
    return {"cache_control": _settings_options("media_cache_control")["media_cache_control"]}


def link_roots():
    """The folders that symlinks in MEDIA_ROOT and STATIC_ROOT may lead into (``MediaHandler``'s ``link_roots``):
    every installed app's folder, STATICFILES_DIRS, and RUNCHERRYPY_LINK_ROOTS."""
    roots = [app_config.path for app_config in apps.get_app_configs()]
    for entry in getattr(settings, "STATICFILES_DIRS", ()):
        roots.append(entry[1] if isinstance(entry, list | tuple) else entry)
    roots.extend(_settings_options("link_roots")["link_roots"])
    return tuple(os.fspath(root) for root in roots)


def static_root_state():
    """``None`` when STATIC_ROOT is a folder with something in it, else what is wrong, for the banner and the
    system check: ``"is not set"``, ``"does not exist"``, ``"is empty"`` (``collectstatic`` never ran), ``"is not a
    directory"`` or ``"cannot be read (...)"``."""
    root = settings.STATIC_ROOT
    if not root:
        return "is not set"
    try:
        with os.scandir(root) as entries:
            if next(entries, None) is None:
                return "is empty"
    except FileNotFoundError:
        return "does not exist"
    except NotADirectoryError:
        return "is not a directory"
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    return None


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
            url_setting("MEDIA_URL"),
            lambda: MediaHandler(settings.MEDIA_ROOT, link_roots=link_roots(), **media_options()),
            f"MEDIA_ROOT {settings.MEDIA_ROOT}",
        )
    else:
        media = Mount("MEDIA_URL", None, None, "not served: MEDIA_ROOT not set")

    if not serve_static:
        static = Mount("STATIC_URL", None, None, "not served: --nostatic")
    elif settings.DEBUG or insecure:
        static = _mount(
            "STATIC_URL",
            url_setting("STATIC_URL"),
            lambda: FinderHandler(finders.find, **static_options()),
            "staticfiles finders",
        )
    elif settings.STATIC_ROOT:
        problem = static_root_state()
        static = _mount(
            "STATIC_URL",
            url_setting("STATIC_URL"),
            lambda: MediaHandler(settings.STATIC_ROOT, link_roots=link_roots(), **static_options()),
            f"STATIC_ROOT {settings.STATIC_ROOT}"
            + (f", which {problem}: every static file is a 404 (run collectstatic)" if problem else ""),
        )
    else:
        static = Mount(
            "STATIC_URL", None, None, "not served: DEBUG is off and STATIC_ROOT is not set (or use --insecure)"
        )
    return [media, static]


def build_application(django_app, mounts, dispatcher=None):
    """Return the WSGI application the server runs: ``django_app`` at the root, each mounted ``Mount`` at its
    prefix, through ``dispatcher`` (default ``cheroot.wsgi.PathInfoDispatcher``: longest prefix first;
    ``/staticfoo`` does not match ``/static``). The gateways pass ``devserver.gateway.PathDispatcher``, which
    dispatches alike, to spare a CGI process cheroot's import.
    """
    if dispatcher is None:
        from cheroot.wsgi import PathInfoDispatcher as dispatcher
    apps = [("", django_app)]
    apps.extend((mount.prefix, mount.app) for mount in mounts if mount.app is not None)
    return dispatcher(apps)


def project_application(*, serve_static=True, insecure=False, dispatcher=None):
    """The WSGI application ``runcherrypy`` serves, and its ``file_mounts``: the project's own
    (``WSGI_APPLICATION``, so middleware in its ``wsgi.py`` is kept) at the root, MEDIA_URL and STATIC_URL beside
    it, through ``dispatcher`` (``build_application``). Returns ``(application, mounts)``."""
    mounts = file_mounts(serve_static=serve_static, insecure=insecure)
    return build_application(get_internal_wsgi_application(), mounts, dispatcher), mounts
