"""System checks of ``runcherrypy``'s configuration (registered by ``devserver.apps``)."""

from django.conf import settings
from django.core.checks import Warning, register

from .mounts import static_root_state, url_prefix, url_setting

__all__ = ["static_root_check"]


@register("runcherrypy")
def static_root_check(app_configs=None, **kwargs):
    """``devserver.W001``: DEBUG is off, STATIC_URL is served here from STATIC_ROOT, and STATIC_ROOT is missing or
    empty, so every static file would be a 404 (the admin comes up unstyled)."""
    if settings.DEBUG or not settings.STATIC_ROOT or url_prefix(url_setting("STATIC_URL"))[0] is None:
        return []
    problem = static_root_state()
    if problem is None:
        return []
    return [
        Warning(
            f"STATIC_ROOT {problem}: with DEBUG off, runcherrypy serves STATIC_URL from STATIC_ROOT, so every "
            "static file would be a 404.",
            hint="Run 'manage.py collectstatic', or serve through the finders with 'runcherrypy --insecure'.",
            obj="STATIC_ROOT",
            id="devserver.W001",
        )
    ]
