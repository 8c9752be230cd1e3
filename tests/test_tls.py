"""HTTPS: ``TLSAdapter`` (the handshake out of cheroot's accept loop, TLS 1.2 or newer, ALPN), ``--certificate``
and ``--private-key`` with their errors and SIGHUP, ``--self-signed`` and ``cherrypy_live_server_https``.
Certificates are made by ``trustme``."""

import json
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import trustme

from devserver.http.tls import TLSAdapter

from .front import free_port
from .http import fetch
from .process import manage
from .tools import require
from .waiting import eventually
from .wsgi import serving


def app(environ, start_response):
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    data = json.dumps(
        {
            "scheme": environ["wsgi.url_scheme"],
            "https": environ.get("HTTPS"),
            "protocol": environ.get("SSL_PROTOCOL"),
            "path": environ["PATH_INFO"],
            "body": body.decode(),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


@pytest.fixture(scope="module")
def authority():
    return trustme.CA()


@pytest.fixture(scope="module")
def pem_files(authority, tmp_path_factory):
    """``(certificate, private_key, ca)`` files for localhost and 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    issued = authority.issue_cert("localhost", "127.0.0.1")
    certificate, key, ca = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(certificate)
    issued.private_key_pem.write_to_path(key)
    authority.cert_pem.write_to_path(ca)
    return str(certificate), str(key), str(ca)


@pytest.fixture(scope="module")
def tls_server(pem_files):
    certificate, key, _ = pem_files
    with serving(app, ssl_adapter=TLSAdapter(certificate, key)) as server:
        yield server


def client_context(ca, **settings):
    context = ssl.create_default_context(cafile=ca)
    for name, value in settings.items():
        setattr(context, name, value)
    return context


def test_https_verified_with_the_authority(tls_server, pem_files):
    context = client_context(pem_files[2])
    context.set_alpn_protocols(["h2", "http/1.1"])
    status, _, body = fetch(tls_server.bind_addr[1], "/x", tls=context, method="POST", body=b"hello")
    seen = json.loads(body)
    assert status == 200 and seen["scheme"] == "https" and seen["https"] == "on" and seen["body"] == "hello"
    assert seen["protocol"] in ("TLSv1.2", "TLSv1.3")
    with (
        socket.create_connection(("127.0.0.1", tls_server.bind_addr[1]), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "http/1.1"  # never h2, which cheroot does not speak


def test_tls_older_than_1_2_is_refused(pem_files):
    # Set on the context, also when reloaded: OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level
    # anyway, so a client that offers them tells nothing over the wire.
    adapter = TLSAdapter(*pem_files[:2])
    assert adapter.context.minimum_version == ssl.TLSVersion.TLSv1_2
    adapter.reload()
    adapter.wrap(socket.socket())[0].close()
    assert adapter.context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_silent_tls_clients_stall_nobody(pem_files):
    """cheroot issue 748: the handshake ran in the accept loop, so one client that sent no ClientHello stalled
    every new connection for ``timeout`` seconds. 50 of them here, and a client is served within a second."""
    certificate, key, ca = pem_files
    with serving(app, ssl_adapter=TLSAdapter(certificate, key)) as server:
        port = server.bind_addr[1]
        silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
        try:
            time.sleep(0.2)
            started = time.monotonic()
            assert fetch(port, "/", tls=client_context(ca), timeout=5)[0] == 200
            assert time.monotonic() - started < 1
            assert server.pool_sizer.size <= server.requests.min + 2  # and they hold no worker
        finally:
            for client in silent:
                client.close()


def test_plain_http_to_the_tls_port_is_a_400_at_once(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.bind_addr[1]), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        started = time.monotonic()
        data = client.recv(65536)
        assert data.startswith(b"HTTP/1.1 400 Bad Request") and b"https://" in data
        assert time.monotonic() - started < 1


@pytest.mark.slow
def test_over_tls_a_slow_request_holds_no_worker_and_keep_alive_works(pem_files):
    certificate, key, ca = pem_files
    context = client_context(ca)
    stop = threading.Event()
    clients = []
    with serving(app, ssl_adapter=TLSAdapter(certificate, key)) as server:
        port = server.bind_addr[1]
        try:
            for _ in range(60):
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                clients.append(context.wrap_socket(raw, server_hostname="localhost"))
            request = b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"

            def drip():
                for position in range(len(request) - 1):
                    for client in clients:
                        client.send(request[position : position + 1])
                    if stop.wait(0.1):
                        return

            dripper = threading.Thread(target=drip, daemon=True)
            dripper.start()
            connection = None
            for _ in range(10):
                started = time.monotonic()
                status, _, body = fetch(port, "/fast", tls=context, timeout=5, connection=connection)
                assert status == 200 and time.monotonic() - started < 1
                time.sleep(0.1)
            assert server.pool_sizer.size <= server.requests.min + 2
            stop.set()
            dripper.join()
        finally:
            stop.set()
            for client in clients:
                client.close()


@pytest.mark.slow
def test_a_tls_request_head_that_does_not_arrive_in_time_gets_a_408_over_tls(pem_files):
    certificate, key, ca = pem_files
    with serving(app, ssl_adapter=TLSAdapter(certificate, key), header_timeout=1) as server:
        raw = socket.create_connection(("127.0.0.1", server.bind_addr[1]), timeout=5)
        with client_context(ca).wrap_socket(raw, server_hostname="localhost") as client:
            client.sendall(b"GET /late HTTP/1.1\r\nHost: h\r\n")
            assert client.recv(65536).startswith(b"HTTP/1.1 408 Request Timeout")


@pytest.fixture
def curl():
    return require("curl", "curl")


def curl_get(curl, url, ca):
    result = subprocess.run(
        [curl, "-sS", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout or result.stderr


def test_the_command_serves_https_that_curl_verifies_and_sighup_loads_a_new_certificate(
    start_server, pem_files, tmp_path, curl
):
    certificate, key, ca = (shutil.copy(path, tmp_path) for path in pem_files)
    running = start_server("127.0.0.1:0", "--noreload", "--certificate", certificate, "--private-key", key)
    assert running.url.startswith("https://")
    url = running.url.replace("127.0.0.1", "localhost") + "test/headers/"
    assert curl_get(curl, url, ca) == "200"

    renewed = trustme.CA()
    issued = renewed.issue_cert("localhost", "127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(certificate)
    issued.private_key_pem.write_to_path(key)
    renewed.cert_pem.write_to_path(tmp_path / "new-ca.pem")
    running.signal(signal.SIGHUP)
    eventually(lambda: curl_get(curl, url, str(tmp_path / "new-ca.pem")) == "200", timeout=10, interval=0.1)
    assert curl_get(curl, url, ca) != "200"  # the old authority no longer vouches for what is served
    assert f"Certificate reloaded from {certificate}." in running.output  # said, in the default logging
    assert running.stop() == 0


def test_self_signed(start_server, curl, tmp_path):
    """One local authority for the user, made the first time with a word on trusting it, reused after: a browser
    told once trusts every later run; nothing is left under /tmp (each run made an authority there, key included,
    and left it)."""
    folder = tmp_path / "authority"
    before = set(Path(tempfile.gettempdir()).glob("runcherrypy-tls-*"))
    running = start_server("127.0.0.1:0", "--noreload", "--self-signed", RUNCHERRYPY_CA_DIR=str(folder))
    authority = running.wait_for(re.compile(r"trust its authority (\S+)"))[1]
    assert authority == str(folder / "rootCA.pem")
    assert "A local certificate authority was made for --self-signed" in running.output
    assert curl_get(curl, running.url + "test/headers/", authority) == "200"
    assert curl_get(curl, running.url.replace("127.0.0.1", "localhost") + "test/headers/", authority) == "200"
    assert running.stop() == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "rootCA-key.pem").stat().st_mode) == 0o600
    made = (folder / "rootCA.pem").read_bytes()
    again = start_server("127.0.0.1:0", "--noreload", "--self-signed", RUNCHERRYPY_CA_DIR=str(folder))
    assert again.wait_for(re.compile(r"trust its authority (\S+)"))[1] == authority
    assert curl_get(curl, again.url + "test/headers/", authority) == "200"  # the same authority vouches
    assert "A local certificate authority was made" not in again.output  # said once
    assert (folder / "rootCA.pem").read_bytes() == made
    assert again.stop() == 0
    assert set(Path(tempfile.gettempdir()).glob("runcherrypy-tls-*")) == before


def test_the_https_live_server(cherrypy_live_server_https):
    assert cherrypy_live_server_https.url.startswith("https://localhost:")
    context = ssl.create_default_context(cafile=cherrypy_live_server_https.authority)
    status, _, _ = fetch(cherrypy_live_server_https.url + "/test/headers/", tls=context)
    assert status == 200


@pytest.mark.slow
def test_certificate_errors_are_one_line(tmp_path, pem_files, authority):
    certificate, key, _ = pem_files
    other_key = tmp_path / "other-key.pem"
    authority.issue_cert("localhost").private_key_pem.write_to_path(other_key)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    for args, message in [
        (["--certificate", str(tmp_path / "none.pem"), "--private-key", key], "Cannot read the certificate "),
        (["--certificate", certificate, "--private-key", str(other_key)], f"The private key {other_key} does not"),
        (["--certificate", str(not_pem), "--private-key", key], f"The certificate {not_pem} holds no PEM certificate"),
        (["--certificate", certificate], "--certificate and --private-key go together."),
        (["--self-signed", "--certificate", certificate, "--private-key", key], "Give either --self-signed"),
    ]:
        result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--skip-checks", *args)
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"CommandError: {message}"), line


def test_a_tls_adapter_the_selector_cannot_read_is_refused():
    """The handshake and the reads are made without blocking through the ssl module's SSLSocket: cheroot's own
    adapters would have their encrypted bytes read as a request."""
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    from devserver.server import create_server

    adapter = BuiltinSSLAdapter.__new__(BuiltinSSLAdapter)
    with pytest.raises(TypeError, match="TLSAdapter"):
        create_server(("127.0.0.1", 0), lambda environ, start_response: [], ssl_adapter=adapter)


def test_key_and_certificate_errors_name_the_file_and_what_is_wrong(tmp_path, pem_files):
    """OpenSSL says ``[SSL] PEM lib`` for the files swapped, for a file that holds no certificate or no key, and
    asks for a passphrase on the terminal for an encrypted key: each is one sentence naming the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from devserver.http.tls import TLSError, load_adapter

    certificate, key, _ = pem_files
    rsa = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("localhost")
    ec_issued = trustme.CA(key_type=trustme.KeyType.ECDSA).issue_cert("localhost")
    ec_certificate, rsa_key = tmp_path / "ec-cert.pem", tmp_path / "rsa-key.pem"
    ec_issued.cert_chain_pems[0].write_to_path(ec_certificate)
    rsa.private_key_pem.write_to_path(rsa_key)
    text = tmp_path / "text.pem"
    text.write_text("hello\n")
    encrypted = tmp_path / "encrypted-key.pem"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    legacy = tmp_path / "legacy-key.pem"
    legacy.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    for pair, message in [
        ((key, certificate), f"The certificate {key} holds a private key and the private key {certificate} a "),
        ((ec_certificate, rsa_key), f"The private key {rsa_key} does not match the certificate {ec_certificate}."),
        ((text, key), f"The certificate {text} holds no PEM certificate"),
        ((certificate, text), f"The private key {text} holds no PEM private key"),
        ((certificate, certificate), f"The private key {certificate} holds no PEM private key"),
        ((certificate, encrypted), f"The private key {encrypted} is encrypted"),
        ((certificate, legacy), f"The private key {legacy} is encrypted"),
    ]:
        with pytest.raises(TLSError) as raised:
            load_adapter(str(pair[0]), str(pair[1]))
        assert str(raised.value).startswith(message), str(raised.value)
        assert "\n" not in str(raised.value) and "PEM lib" not in str(raised.value)
    assert load_adapter(certificate, key) is not None


def test_a_leaf_is_never_reused_from_an_authority_that_is_gone(tmp_path):
    """A leaf names its authority: when the authority is made again, no leaf of the old one is served, and a leaf
    is valid for at most 825 days (Apple's platforms refuse longer ones)."""
    from cryptography import x509

    from devserver.http.tls import self_signed

    first = self_signed(["localhost"], tmp_path)
    again = self_signed(["localhost"], tmp_path)
    assert first.new_authority and not again.new_authority and again.certificate == first.certificate  # reused
    for path in tmp_path.glob("rootCA*"):
        path.unlink()
    second = self_signed(["localhost"], tmp_path)
    assert second.new_authority and second.certificate != first.certificate
    assert not Path(first.certificate).exists()
    authority = x509.load_pem_x509_certificate(Path(second.authority).read_bytes())
    leaf = x509.load_pem_x509_certificate(Path(second.certificate).read_bytes())
    assert leaf.issuer == authority.subject
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 825


@pytest.mark.parametrize("workers", ["1", "2"])
def test_https_and_plain_http_at_once(start_server, pem_files, workers):
    """A small site alone: HTTPS on one port and plain HTTP on another, in one command (as 443 and 80), so that
    SECURE_SSL_REDIRECT and HSTS have a plain port to work from; with --workers too."""
    certificate, key, ca = pem_files
    tls_port, plain_port = free_port(), free_port()
    running = start_server(
        f"127.0.0.1:{tls_port}",
        "--noreload",
        "--workers",
        workers,
        "--certificate",
        certificate,
        "--private-key",
        key,
        "--plain-http",
        f"127.0.0.1:{plain_port}",
    )
    assert running.wait_for(f"https://127.0.0.1:{tls_port}/ and http://127.0.0.1:{plain_port}/")
    context = ssl.create_default_context(cafile=ca)
    status, _, body = fetch(f"https://localhost:{tls_port}", "/test/client/", tls=context)
    assert status == 200 and json.loads(body)["is_secure"] is True
    status, _, body = fetch(f"http://127.0.0.1:{plain_port}", "/test/client/")
    assert status == 200 and json.loads(body)["is_secure"] is False
    assert running.stop() == 0


def test_plain_http_needs_tls(tmp_path):
    result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--plain-http", "8080")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: --plain-http is beside HTTPS: give --certificate and --private-key, or --self-signed."
    )
