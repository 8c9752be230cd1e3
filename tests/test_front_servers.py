"""The gateways behind the distribution's front servers, each with its recipe of ``deploy/`` run as it is (example
values replaced): Apache's mod_cgi running the script ``cgi_script`` writes; nginx ``scgi_pass`` to ``runscgi
--inetd`` spawned per connection by ``systemd-socket-activate --inetd``, and to the long-running ``runscgi``;
Apache's mod_proxy_scgi in front of ``runscgi``. Each serves the sample as a user sees it (``front.check_site``)."""

import json
import ssl
import subprocess
import sys

import pytest
import trustme

from .front import (
    check_site,
    free_port,
    prepare_sample,
    recipe,
    start_apache,
    start_nginx,
)
from .http import fetch
from .process import ROOT, manage, manage_env
from .tools import require

pytestmark = pytest.mark.slow  # nginx and Apache in front of subprocesses


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample with DEBUG off, migrated, a superuser, static files collected: ``(folder, environment)``."""
    folder = tmp_path_factory.mktemp("sample")
    return folder, prepare_sample(folder)


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
    """``systemd-socket-activate --accept --inetd`` stands in for the super-server (``deploy/systemd/runscgi-inetd.*``
    say the same to systemd): each connection nginx makes starts ``runscgi --inetd`` with the connection as its
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


def peak_resident_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])


def test_nginx_passes_the_client_and_https_and_a_large_file_streams_flat(tmp_path, runscgi):
    """On the tests' project: ``REMOTE_ADDR`` and ``HTTPS`` from nginx's ``scgi_params`` reach Django (the client's
    address, ``request.is_secure()``), and a 100 MB file goes through without the server's memory growing."""
    media = tmp_path / "media"
    media.mkdir()
    with open(media / "big.bin", "wb") as file:
        file.truncate(100 * 1024 * 1024)
    sock = tmp_path / "site.sock"
    running = runscgi("--unix-socket", str(sock), DJANGO_MEDIA_ROOT=str(media))
    authority = trustme.CA()
    issued = authority.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    http_port, https_port = free_port(), free_port()
    site = recipe(
        "nginx/scgi.conf",
        [
            ("unix:/run/runscgi/site.sock", f"unix:{sock}"),
            (
                "listen 80;",
                f"listen 127.0.0.1:{http_port};\n    listen 127.0.0.1:{https_port} ssl;\n"
                f"    ssl_certificate {cert};\n    ssl_certificate_key {key};",
            ),
            ("example.com", "localhost"),
        ],
    )
    nginx = start_nginx(tmp_path, site, https_port)
    try:
        context = ssl.create_default_context()
        authority.configure_trust(context)
        status, _, body = fetch(f"https://localhost:{https_port}", "/test/client/", tls=context)
        assert status == 200
        seen = json.loads(body)
        assert (seen["remote_addr"], seen["is_secure"], seen["absolute_uri"]) == (
            "127.0.0.1",
            True,
            "https://localhost/x/",  # Debian's scgi_params send HTTP_HOST as $host: without the port
        )
        status, _, body = fetch(f"http://localhost:{http_port}", "/test/client/")
        assert status == 200 and json.loads(body)["is_secure"] is False

        before = peak_resident_kib(running.process.pid)
        status, headers, body = fetch(f"http://localhost:{http_port}", "/media/big.bin", timeout=60)
        assert status == 200 and len(body) == 100 * 1024 * 1024 and body.count(0) == len(body)
        del body
        grown = peak_resident_kib(running.process.pid) - before
        assert grown < 16 * 1024, f"the server's peak memory grew by {grown} KiB"
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


@pytest.mark.parametrize("over", ["unix socket", "TCP"])
def test_apache_mod_proxy_http_to_runcherrypy(sample, tmp_path, start_server, over):
    """deploy/apache/proxy.conf as written: the sample through Apache (page, tiles, a 304, HEAD, static files from
    STATIC_ROOT by Apache, the admin's login and redirect), on a unix socket or on TCP."""
    folder, env = sample
    replacements = [("/srv/site/static/", f"{folder}/static/")]
    if over == "TCP":
        running = start_server("127.0.0.1:0", "--noreload", **env)
        replacements += [
            ("ProxyPass / unix:/run/runcherrypy/site.sock|http://localhost/", f"ProxyPass / {running.url}"),
            ("ProxyPassReverse / http://localhost/", f"ProxyPassReverse / {running.url}"),
        ]
    else:
        sock = tmp_path / "site.sock"
        running = start_server("--noreload", "--unix-socket", str(sock), **env)
        replacements.append(("/run/runcherrypy/site.sock", str(sock)))
    port = free_port()
    apache = start_apache(tmp_path, recipe("apache/proxy.conf", replacements), port, ["proxy", "proxy_http", "headers"])
    try:
        check_site(apache.url)
    finally:
        apache.stop()
    assert '"GET /static/admin/css/base.css' not in running.output  # Apache served it from STATIC_ROOT
    assert "Traceback" not in running.output


def test_apache_passes_the_client_and_https_on(start_server, tmp_path):
    """Behind Apache with TLS: the application sees the client's address (a forged X-Forwarded-For is not believed)
    and request.is_secure(); the access log names the client."""
    sock = tmp_path / "site.sock"
    running = start_server("--noreload", "--unix-socket", str(sock), "--forwarded-allow-ips", "10.255.255.1")
    authority = trustme.CA()
    issued = authority.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    proxy = recipe(
        "apache/proxy.conf", [("/srv/site/static/", f"{tmp_path}/static/"), ("/run/runcherrypy/site.sock", str(sock))]
    )
    http_port, https_port = free_port(), free_port()
    site = f"""Listen 127.0.0.1:{https_port}
<VirtualHost 127.0.0.1:{https_port}>
SSLEngine on
SSLCertificateFile {cert}
SSLCertificateKeyFile {key}
{proxy}
</VirtualHost>
<VirtualHost 127.0.0.1:{http_port}>
{proxy}
</VirtualHost>
"""
    apache = start_apache(tmp_path, site, http_port, ["proxy", "proxy_http", "headers", "socache_shmcb", "ssl"])
    try:
        context = ssl.create_default_context()
        authority.configure_trust(context)
        status, _, body = fetch(
            f"https://127.0.0.1:{https_port}", "/test/client/", tls=context, headers={"X-Forwarded-For": "6.6.6.6"}
        )
        assert status == 200, apache.errors()
        seen = json.loads(body)
        assert (seen["remote_addr"], seen["is_secure"]) == ("127.0.0.1", True)
        status, _, body = fetch(f"http://127.0.0.1:{http_port}", "/test/client/")
        assert json.loads(body)["is_secure"] is False
    finally:
        apache.stop()
    assert running.wait_for('127.0.0.1 "GET /test/client/ HTTP/1.1" 200')
