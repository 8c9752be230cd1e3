"""WSGI config for cherrytest: ``application`` is what WSGI_APPLICATION names and runcherrypy serves."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cherrytest.settings")

application = get_wsgi_application()
