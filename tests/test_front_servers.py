"""The gateways behind the distribution's front servers, each with its recipe of ``deploy/`` run as it is (example
values replaced): Apache's mod_cgi running the script ``cgi_script`` writes; nginx ``scgi_pass`` to ``runscgi
--inetd`` spawned per connection by ``systemd-socket-activate --inetd``, and to the long-running ``runscgi``;
Apache's mod_proxy_scgi in front of ``runscgi``. Each serves the sample as a user sees it (``front.check_site``)."""

import subprocess
import sys

import pytest
import trustme

from .front import (
    check_site,
    free_port,
    prepare_sample,
    recipe,
    scgi_raw,
    scgi_request,
    start_apache,
    start_nginx,
    wait_for_port,
)
from .http import fetch
from .process import ROOT, Runscgi, manage, manage_env
from .tools import require


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample with DEBUG off, migrated, a superuser, static files collected: ``(folder, environment)``."""
    folder = tmp_path_factory.mktemp("sample")
    return folder, prepare_sample(folder)


@pytest.fixture
def runscgi(tmp_path):
    started = []

    def start(*args, **env):
        running = Runscgi(tmp_path, "--noreload", *args, **env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def test_apache_mod_cgi_runs_the_script_cgi_script_wrote(sample, tmp_path):
    folder, env = sample
    cgi_bin = tmp_path / "cgi-bin"
    cgi_bin.mkdir()
    done = manage(tmp_path, "cgi_script", "--output", str(cgi_bin / "site.cgi"), **env)
    assert done.returncode == 0, done.stderr
    port = free_port()
    settings_env = "\n".join(f"SetEnv {name} {value}" for name, value in env.items() if name != "DJANGO_DEBUG")
    site = recipe(
        "apache/cgi.conf",
        [
            ("/usr/lib/cgi-bin", str(cgi_bin)),
            ("SetEnv DJANGO_ALLOWED_HOSTS example.com", f"SetEnv DJANGO_ALLOWED_HOSTS 127.0.0.1\n{settings_env}"),
        ],
    )
    apache = start_apache(tmp_path, site, port, ["cgi"])
    try:
        check_site(apache.url, "/cgi-bin/site.cgi")
    finally:
        apache.stop()
    assert "Traceback" not in apache.errors()


def nginx_site(sock, port):
    return recipe(
        "nginx/scgi.conf",
        [
            ("unix:/run/runscgi/site.sock", f"unix:{sock}"),
            ("listen 80;", f"listen 127.0.0.1:{port};"),
            ("example.com", "127.0.0.1"),
        ],
    )


def test_nginx_scgi_pass_to_runscgi_inetd_per_connection(sample, tmp_path):
    """``systemd-socket-activate --accept --inetd`` stands in for the super-server (``deploy/systemd/runscgi-inetd.*`` say
    the same to systemd): each connection nginx makes starts ``runscgi --inetd`` with the connection as its
    standard input and output."""
    folder, env = sample
    activate = require("systemd-socket-activate", "systemd")
    sock = tmp_path / "site.sock"
    # systemd-socket-activate passes its children only the variables named with -E.
    passed = [f"-E{name}={value}" for name, value in manage_env(folder, **env).items() if name.startswith("DJANGO")]
    command = [sys.executable, str(ROOT / "manage.py"), "runscgi", "--inetd"]
    with open(tmp_path / "spawner.log", "wb") as log:
        spawner = subprocess.Popen(
            [activate, "--accept", "--inetd", "-l", str(sock), *passed, *command],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    port = free_port()
    try:
        nginx = start_nginx(tmp_path, nginx_site(sock, port), port)
        try:
            check_site(nginx.url)
        finally:
            nginx.stop()
    finally:
        spawner.terminate()
        spawner.wait(10)
    assert "Traceback" not in (tmp_path / "spawner.log").read_text()


def test_nginx_scgi_pass_to_runscgi_on_a_unix_socket(sample, tmp_path, runscgi):
    folder, env = sample
    sock = tmp_path / "site.sock"
    running = runscgi("--workers", "2", "--unix-socket", str(sock), **env)
    port = free_port()
    nginx = start_nginx(tmp_path, nginx_site(sock, port), port)
    try:
        check_site(nginx.url)
    finally:
        nginx.stop()
    assert "Traceback" not in running.output


def test_apache_mod_proxy_scgi_to_runscgi(sample, tmp_path, runscgi):
    """The admin's login is a POST answered with a relative redirect: it reaches the client as a 302 with its
    Location (``check_site``), not as an internal redirect of Apache's."""
    folder, env = sample
    running = runscgi("127.0.0.1:0", **env)
    port = free_port()
    site = recipe("apache/scgi.conf", [("scgi://127.0.0.1:4000/", f"scgi://127.0.0.1:{running.port}/")])
    apache = start_apache(tmp_path, site, port, ["proxy", "proxy_scgi"])
    try:
        check_site(apache.url)
    finally:
        apache.stop()
    assert "Traceback" not in running.output
