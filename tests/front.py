"""Front servers from the distribution (nginx, Apache) run on loopback with a recipe of ``deploy/``, an SCGI client,
and the checks every gateway must pass on the sample project."""

import getpass
import html
import os
import re
import shutil
import socket
import subprocess
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import django

from .http import fetch, raw_request
from .process import ROOT, SAMPLE, manage
from .tools import require
from .waiting import eventually

APACHE_MODULES = "/usr/lib/apache2/modules"
ADMIN_PASSWORD = "cherry-pie-2026"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, timeout=15):
    def listening():
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    eventually(listening, timeout, interval=0.05, context=lambda: f"nothing listens on port {port}")


def scgi_request(target, variables, body=b"", timeout=15):
    """Send one SCGI request (``variables``: name → str; ``CONTENT_LENGTH`` and ``SCGI`` added first) to
    ``target`` (a port on 127.0.0.1, or what ``http.address`` takes); return everything the server sent back."""
    variables = {"CONTENT_LENGTH": str(len(body)), "SCGI": "1", **variables}
    header = b"".join(name.encode() + b"\0" + value.encode("latin-1") + b"\0" for name, value in variables.items())
    return raw_request(target, str(len(header)).encode() + b":" + header + b"," + body, timeout=timeout)


def prepare_sample(folder):
    """The sample project ready for production in ``folder``: DEBUG off, its database migrated with a superuser
    ``admin``, static files collected. Returns the environment that runs it."""
    env = {
        **SAMPLE,
        "DJANGO_DEBUG": "0",
        "DJANGO_DATABASE": str(folder / "db.sqlite3"),
        "DJANGO_STATIC_ROOT": str(folder / "static"),
    }
    for args in (
        ("migrate", "--noinput"),
        ("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"),
        ("collectstatic", "--noinput"),
    ):
        done = manage(folder, *args, DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD, **env)
        assert done.returncode == 0, done.stderr
    os.chmod(folder, 0o755)
    return env


class Front:
    """A front server process started from a configuration file; ``stop()`` ends it."""

    def __init__(self, command, port, folder, log):
        self.port = port
        self.log = log
        # Its own process group: Apache's prefork ends by sending SIGTERM to its whole group.
        with open(folder / "front-stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=stderr, cwd=folder, start_new_session=True
            )
        try:
            wait_for_port(port, self.process)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{self.errors()}") from None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def errors(self):
        return "".join(
            path.read_text(errors="replace")
            for path in (self.log, self.log.parent / "front-stderr.log")
            if path.exists()
        )

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_nginx(folder, site, port, user=None):
    """nginx with ``site`` (a ``server {}`` block, as text) inside ``http {}``, and Debian's ``scgi_params``
    beside it; its workers run as ``user`` when it is started as root (this process's user by default)."""
    nginx = require("nginx", "nginx-light")
    shutil.copy("/etc/nginx/scgi_params", folder / "scgi_params")
    (folder / "site.conf").write_text(site)
    user = f"user {user or getpass.getuser()};" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    scgi_temp_path {folder}/scgi;
    proxy_temp_path {folder}/proxy;
    include {folder}/site.conf;
}}
"""
    )
    command = [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    return Front(command, port, folder, folder / "error.log")


def start_apache(folder, site, port, modules):
    """Apache (prefork) with ``site`` (directives, as text) and ``modules`` (``cgi``, ``proxy``, ...) loaded,
    listening on ``port``. Apache refuses to serve as root, and its ``User`` could not reach an interpreter kept
    below ``/root``: started as root, it runs in a user namespace where it is an ordinary user (``unshare``) and
    keeps root's access to files outside it."""
    apache = require("apache2", "apache2")
    loads = "\n".join(
        f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so"
        for name in ("mpm_prefork", "authz_core", "alias", "env", "mime", *modules)
    )
    (folder / "site.conf").write_text(site)
    (folder / "httpd.conf").write_text(
        f"""ServerRoot {folder}
{loads}
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
PidFile {folder}/httpd.pid
ErrorLog {folder}/error.log
LogLevel warn
TypesConfig /etc/mime.types
DefaultRuntimeDir {folder}
Include {folder}/site.conf
"""
    )
    command = [apache, "-f", str(folder / "httpd.conf"), "-D", "FOREGROUND"]
    if os.geteuid() == 0:
        command = [require("unshare", "util-linux"), "--user", "--map-user=33", "--map-group=33", *command]
    return Front(command, port, folder, folder / "error.log")


def recipe(name, replacements):
    """A file of ``deploy/`` with its example values replaced (each must be there)."""
    text = (ROOT / "deploy" / name).read_text()
    for example, value in replacements:
        assert example in text, f"{example!r} is not in deploy/{name}"
        text = text.replace(example, value)
    return text


def cookies_of(headers):
    jar = SimpleCookie()
    for value in headers.get_all("Set-Cookie") or []:
        jar.load(value)
    return jar


def check_site(url, prefix=""):
    """What a user of the sample sees through a gateway at ``url`` + ``prefix`` (the path the site is mounted at):
    the page with its 36 tiles, a tile and its 304, HEAD without a body, an admin stylesheet, the admin's login form
    POSTed with its CSRF token and the redirect that follows (with the prefix), and a 404 that names no path."""
    status, headers, page = fetch(url, f"{prefix}/")
    assert status == 200, page[:2000]
    assert page.count(f'src="{prefix}/media/app/tiles/'.encode()) == 36
    assert f'href="{prefix}/static/app/site.css"'.encode() in page

    tile = (ROOT / "cherrytest/app/media/tiles/r5-c5.png").read_bytes()
    status, headers, body = fetch(url, f"{prefix}/media/app/tiles/r5-c5.png")
    assert (status, headers["Content-Type"], body) == (200, "image/png", tile)
    status, _, body = fetch(url, f"{prefix}/media/app/tiles/r5-c5.png", headers={"If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    status, head, body = fetch(url, f"{prefix}/media/app/tiles/r5-c5.png", method="HEAD")
    # Apache's mod_cgi frames a CGI response itself, and leaves Content-Length out: where it is sent, it is the GET's.
    assert (status, head.get("Content-Length", str(len(tile))), body) == (200, str(len(tile)), b"")

    css = Path(django.__file__).parent / "contrib/admin/static/admin/css/base.css"
    status, headers, body = fetch(url, f"{prefix}/static/admin/css/base.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert body == css.read_bytes()

    status, headers, form = fetch(url, f"{prefix}/admin/login/")
    assert status == 200
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1].decode()
    cookies = cookies_of(headers)
    fields = {"csrfmiddlewaretoken": token, "username": "admin", "password": ADMIN_PASSWORD, "next": f"{prefix}/admin/"}
    status, headers, body = fetch(
        url,
        f"{prefix}/admin/login/?next={prefix}/admin/",
        method="POST",
        body=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken'].value}",
        },
    )
    assert status == 302, body[:2000]
    assert headers["Location"] == f"{prefix}/admin/"
    session = cookies_of(headers)["sessionid"].value
    status, _, body = fetch(url, f"{prefix}/admin/", headers={"Cookie": f"sessionid={session}"})
    assert status == 200 and b"Site administration" in body
    assert html.escape(f"{prefix}/admin/logout/").encode() in body  # reverse() carries the prefix

    status, _, body = fetch(url, f"{prefix}/media/app/tiles/nowhere.png")
    assert status == 404 and str(ROOT).encode() not in body and b"Traceback" not in body
