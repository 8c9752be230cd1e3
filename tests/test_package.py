"""The package as a user installs it: the wheel, in a fresh virtualenv, serving a new Django project.

A file left out of the package (a module, a template, the management command) fails here, not in a user's hands.
"""

import os
import subprocess
import sys

import pytest

from .http import fetch
from .process import ROOT, Runcherrypy

pytestmark = pytest.mark.slow  # builds the wheel and installs it in a fresh virtualenv


def run(*args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_wheel_serves_a_new_project_from_a_fresh_virtualenv(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(ROOT))
    (wheel,) = dist.glob("django_runcherrypy-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel))
    # Nothing of this checkout on the path: only what the wheel installed.
    environ = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    environ["PYTHONUNBUFFERED"] = "1"
    run(str(venv / "bin" / "django-admin"), "startproject", "newsite", cwd=tmp_path, env=environ)
    settings = tmp_path / "newsite" / "newsite" / "settings.py"
    text = settings.read_text()
    assert "'django.contrib.staticfiles'," in text
    settings.write_text(
        text.replace("'django.contrib.staticfiles',", "'django.contrib.staticfiles',\n    'devserver',")
    )
    origin = run(python, "-c", "import devserver; print(devserver.__file__)", cwd=tmp_path, env=environ).stdout
    assert origin.startswith(str(venv)), origin

    server = Runcherrypy(
        tmp_path, "127.0.0.1:0", "--noreload", "--skip-checks", cwd=tmp_path / "newsite", python=python, environ=environ
    )
    try:
        assert fetch(server)[0] == 200  # Django's "The install worked successfully!" page
        status, headers, _ = fetch(server, "/static/admin/css/base.css")
        assert (status, headers["Content-Type"]) == (200, "text/css; charset=utf-8")
    finally:
        assert server.stop() == 0, server.output
