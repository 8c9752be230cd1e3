from django.apps import AppConfig


class DevserverConfig(AppConfig):
    """The ``devserver`` app: add it to INSTALLED_APPS to get ``manage.py runcherrypy``."""

    name = "devserver"
    verbose_name = "runcherrypy"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
