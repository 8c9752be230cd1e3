"""``manage.py cgi_script [--output FILE]``: write an executable CGI script that serves this project.

The script runs ``devserver.gateway.run_cgi``: the standard library's ``wsgiref.handlers.CGIHandler`` with the
application tree of ``runcherrypy`` (the project at the root, MEDIA_URL and STATIC_URL served by the file handlers).
"""

import compileall
import importlib
import os
import stat
import sys
import tempfile
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

TEMPLATE = '''\
#!{python} -I
"""CGI script for the Django project {settings_module}, written by `manage.py cgi_script`.

Every request starts Python, loads the project and answers through wsgiref's CGIHandler (RFC 3875);
devserver.gateway says what it adds. Write it again after moving the project or its virtualenv.
"""
import os
import sys

sys.path.insert(0, {project_dir!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", {settings_module!r})

from devserver.gateway import run_cgi

run_cgi()
'''


def settings_package():
    """The folder of the settings' top-level package (``cherrytest/``)."""
    return Path(importlib.import_module(settings.SETTINGS_MODULE.split(".")[0]).__file__).resolve().parent


def project_dir():
    """The folder that holds the settings' top-level package: what ``manage.py`` puts on ``sys.path``."""
    return str(settings_package().parent)


def interpreter(python=None):
    """The interpreter's path for the script's first line: ``python`` (default: this interpreter, so the current
    virtualenv's), absolute and normalised (no ``..`` or doubled ``/``), its symlinks kept (a virtualenv's
    ``bin/python`` is a link to the interpreter it was made from, and only the link knows the virtualenv)."""
    return os.path.normpath(os.path.abspath(python or sys.executable))


def obstacles(path, what):
    """Why a user other than this file's owner and group (the front server's: www-data) cannot run ``path`` (an
    executable) or read ``path`` (a folder), following symlinks: a list of one-line reasons, empty when none is
    found. Apache says only ``AH01241: exec of ... failed (Permission denied)``."""
    reasons = []
    for candidate in dict.fromkeys((Path(path), Path(path).resolve())):
        for folder in reversed(candidate.parents):
            try:
                mode = folder.stat().st_mode
            except OSError:
                continue
            if not mode & stat.S_IXOTH:
                where = f"{path} is" if candidate == Path(path) else f"{path} leads to {candidate},"
                reasons.append(
                    f"{what} {where} inside {folder}, which other users may not enter (mode {mode & 0o777:o})"
                )
                break
        try:
            mode = candidate.stat().st_mode
        except OSError as error:
            reasons.append(f"{what} {candidate}: {error.strerror}")
            continue
        needed = stat.S_IXOTH if candidate.is_file() else stat.S_IROTH | stat.S_IXOTH
        if mode & needed != needed:
            kind = "executable" if candidate.is_file() else "readable"
            reasons.append(f"{what} {candidate} is not {kind} by other users (mode {mode & 0o777:o})")
    return list(dict.fromkeys(reasons))


def script_text(python=None):
    """The script: ``python`` (``interpreter``) in isolated mode (``-I``: no ``PYTHON*`` variables, no user site
    folder, no script folder on ``sys.path``), the project's folder first on ``sys.path``,
    ``DJANGO_SETTINGS_MODULE`` unless the front server sets it."""
    return TEMPLATE.format(
        python=interpreter(python), project_dir=project_dir(), settings_module=settings.SETTINGS_MODULE
    )


class Command(BaseCommand):
    help = (
        "Writes an executable CGI script that serves the project, with MEDIA_URL and STATIC_URL, for a host that "
        "offers only CGI (Apache's mod_cgi); and compiles the project's bytecode, which the front server's user "
        "usually cannot write."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            metavar="FILE",
            help="Write the script to FILE, executable (mode 0755); without it, to standard output.",
        )
        parser.add_argument(
            "--python",
            metavar="PATH",
            help=f"The interpreter the script runs with [default: this one, {sys.executable}].",
        )

    def handle(self, *args, **options):
        text = script_text(options["python"])
        for reason in obstacles(interpreter(options["python"]), "The interpreter") + obstacles(
            project_dir(), "The project's folder"
        ):
            # The front server runs the script as its own user: warn, and write it anyway (it may be root's own).
            self.stderr.write(f"Warning: {reason}: the front server's user cannot run the script.")
        compiled = self.compile_project()
        if not options["output"] or options["output"] == "-":
            self.stdout.write(text, ending="")
            return
        path = Path(options["output"]).resolve()
        if path.is_dir():
            raise CommandError(f"{path} is a folder: give the script's file name.")
        if not path.parent.is_dir():
            raise CommandError(f"Cannot write {path}: the folder {path.parent} does not exist.")
        try:
            with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".cgi-", delete=False) as file:
                file.write(text)
            os.chmod(file.name, 0o755)
            os.replace(file.name, path)
        except OSError as error:
            if os.path.exists(file.name):
                os.unlink(file.name)
            raise CommandError(f"Cannot write {path}: {error.strerror}.") from None
        self.stdout.write(f"Wrote {path} ({compiled} folders compiled to bytecode).")

    def compile_project(self):
        """Compile the project's modules (the settings' package and every installed app inside the project's
        folder, and devserver) to ``__pycache__``, since the CGI script's user may not write there and would
        then compile them on every request. Returns how many folders were compiled."""
        package = settings_package()
        root = package.parent
        folders = {package}
        folders.add(Path(__file__).resolve().parents[2])  # devserver
        for app_config in apps.get_app_configs():
            folder = Path(app_config.path)
            if folder.is_relative_to(root):
                folders.add(folder)
        for folder in sorted(folders):
            compileall.compile_dir(folder, quiet=1)
        return len(folders)
