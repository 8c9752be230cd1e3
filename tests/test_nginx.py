"""runcherrypy with two worker processes behind the distribution's nginx, on a unix socket, with HTTPS at nginx:
``deploy/nginx/runcherrypy.conf`` run as it is, with only its example values replaced."""

import json
import os
import pwd
import shutil
import signal
import ssl
import stat
import tempfile
import threading
from pathlib import Path

import pytest
import trustme

from .front import free_port, recipe, start_nginx
from .http import fetch
from .process import ROOT, SAMPLE
from .tools import require
from .waiting import eventually

pytestmark = pytest.mark.slow  # nginx in front of a subprocess


def https_site(folder, sock, host="localhost"):
    """deploy/nginx/runcherrypy.conf for ``sock``, on free loopback ports, with a certificate for ``host`` from a
    new authority: ``(site, http_port, https_port, context)``, ``context`` a client's that trusts the authority."""
    authority = trustme.CA()
    issued = authority.issue_cert(host)
    cert, key = folder / "cert.pem", folder / "key.pem"
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    http_port, https_port = free_port(), free_port()
    site = recipe(
        "nginx/runcherrypy.conf",
        [
            ("/run/runcherrypy/site.sock", str(sock)),
            ("listen 80;", f"listen 127.0.0.1:{http_port};"),
            ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
            ("/etc/letsencrypt/live/example.com/fullchain.pem", str(cert)),
            ("/etc/letsencrypt/live/example.com/privkey.pem", str(key)),
            *((("example.com", host),) if host != "example.com" else ()),
        ],
    )
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return site, http_port, https_port, context


@pytest.fixture(params=["tests", "sample"])
def behind_nginx(request, start_server, tmp_path):
    require("nginx", "nginx-light")
    sock = tmp_path / "site.sock"
    # Every unix-socket peer is trusted; 127.0.0.1 is not, here, since the test's client is on loopback too.
    running = start_server(
        "--noreload",
        "--workers",
        "2",
        "--unix-socket",
        str(sock),
        "--forwarded-allow-ips",
        "10.255.255.1",
        **(SAMPLE if request.param == "sample" else {}),
    )
    site, http_port, https_port, context = https_site(tmp_path, sock)
    nginx = start_nginx(tmp_path, site, https_port)
    try:
        yield request.param, running, f"https://localhost:{https_port}", context, http_port
    finally:
        nginx.stop()


def test_behind_nginx_on_a_unix_socket(behind_nginx):
    project, running, url, context, http_port = behind_nginx
    if project == "sample":
        status, _, page = fetch(url, "/", tls=context)
        assert status == 200 and page.count(b'src="/media/app/tiles/') == 36
        status, headers, tile = fetch(url, "/media/app/tiles/r0-c0.png", tls=context)
        assert status == 200 and headers["Content-Type"] == "image/png" and tile.startswith(b"\x89PNG")
        assert running.wait_for('127.0.0.1 "GET /media/app/tiles/r0-c0.png HTTP/1.1" 200')
        return
    status, _, body = fetch(url, "/test/client/", tls=context, headers={"X-Forwarded-For": "6.6.6.6"})
    assert status == 200
    assert json.loads(body) == {
        "remote_addr": "127.0.0.1",  # the address nginx saw, not the one the client wrote
        "is_secure": True,
        "absolute_uri": "https://localhost/x/",
        "forwarded": [
            "HTTP_X_FORWARDED_FOR",
            "HTTP_X_FORWARDED_HOST",
            "HTTP_X_FORWARDED_PORT",
            "HTTP_X_FORWARDED_PROTO",
        ],
    }
    assert running.wait_for('127.0.0.1 "GET /test/client/ HTTP/1.1" 200')  # the access log names the client
    status, headers, body = fetch(url, "/static/project/site.css", tls=context)
    assert status == 200 and body == (ROOT / "tests/project/static/project/site.css").read_bytes()
    # A 304 comes through, and a body reaches the application whole.
    etag = headers["ETag"]
    assert fetch(url, "/static/project/site.css", tls=context, headers={"If-None-Match": etag})[0] == 304
    assert fetch(f"http://127.0.0.1:{http_port}", "/")[0] == 301


@pytest.mark.skipif(os.geteuid() != 0, reason="starting as root and switching to www-data needs root")
@pytest.mark.parametrize("switch", [("--user", "www-data"), ("--user", "nobody", "--socket-group", "www-data")])
def test_the_recipe_as_root_serves_through_nginx_as_www_data(start_server, tmp_path, switch):
    """The recipe followed literally as root: the socket is given to --user (or --socket-group) before it accepts
    a connection, and nginx's workers, as www-data, connect (left to root with mode 0660 it was a 502)."""
    require("nginx", "nginx-light")
    www_data = pwd.getpwnam("www-data")
    run = Path(tempfile.mkdtemp(prefix="runcherrypy-run-"))  # as /run/runcherrypy: a folder others may enter
    try:
        run.chmod(0o755)
        sock = run / "site.sock"
        running = start_server("--noreload", "--unix-socket", str(sock), *switch)
        info = os.stat(sock)
        user = pwd.getpwnam(switch[1])
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (user.pw_uid, www_data.pw_gid, 0o660)
        site, _, https_port, context = https_site(tmp_path, sock, host="example.com")
        nginx = start_nginx(tmp_path, site, https_port, user="www-data")
        try:
            context.check_hostname = False  # the certificate names example.com; the client asks 127.0.0.1
            status, _, body = fetch(f"https://127.0.0.1:{https_port}", "/test/client/", tls=context)
            assert status == 200, (tmp_path / "error.log").read_text()
            assert json.loads(body)["is_secure"] is True
        finally:
            nginx.stop()
        assert running.stop() == 0
    finally:
        shutil.rmtree(run, ignore_errors=True)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_two_instances_behind_nginx_one_stops_or_dies_under_load(start_server, tmp_path, how):
    """deploy/nginx/instances.conf as written: two instances, GETs arriving throughout while one gets SIGTERM (it
    finishes what it has; nginx sends the rest to the other) or SIGKILL (nginx sends on what failed): no request
    fails, as only idempotent ones are sent."""
    require("nginx", "nginx-light")
    run = Path(tempfile.mkdtemp(prefix="runcherrypy-instances-"))
    try:
        run.chmod(0o755)
        sockets = [run / "a.sock", run / "b.sock"]
        instances = [
            start_server("--noreload", "--unix-socket", str(sock), "--shutdown-timeout", "2") for sock in sockets
        ]
        port = free_port()
        site = recipe(
            "nginx/instances.conf",
            [
                ("/run/runcherrypy/a.sock", str(sockets[0])),
                ("/run/runcherrypy/b.sock", str(sockets[1])),
                ("listen 80;", f"listen 127.0.0.1:{port};"),
            ],
        )
        nginx = start_nginx(tmp_path, site, port)
        failures, answered = [], []
        stop = threading.Event()

        def client():
            while not stop.is_set():
                try:
                    status, _, _ = fetch(f"http://127.0.0.1:{port}", "/test/headers/", timeout=10)
                    (answered if status == 200 else failures).append(status)
                except OSError as error:
                    failures.append(repr(error))

        threads = [threading.Thread(target=client) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            eventually(lambda: len(answered) >= 200, timeout=30)
            instances[0].signal(how)
            instances[0].process.wait(15)
            count = len(answered)
            eventually(lambda: len(answered) >= count + 1000, timeout=60)  # the other one serves on, for seconds
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)
            nginx.stop()
        assert failures == [], (failures[:5], (tmp_path / "error.log").read_text()[-2000:])
        assert instances[1].stop() == 0
    finally:
        shutil.rmtree(run, ignore_errors=True)
