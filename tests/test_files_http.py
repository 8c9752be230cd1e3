"""File responses over real HTTP: sendfile, ranges, interrupted downloads, HEAD, precompressed siblings."""

import gzip
import http.client
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from devserver.media import MediaHandler

from .http import fetch
from .process import ROOT
from .waiting import eventually
from .wsgi import serving

BIG = 8 * 1024 * 1024 + 123


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    (root / "big.bin").write_bytes(os.urandom(BIG))
    (root / "small.txt").write_text("small\n")
    return root


@pytest.fixture
def sendfile_calls(monkeypatch):
    """Every socket.sendfile call the server makes: (offset, count), recorded as it starts (the client may have
    every byte before the call returns)."""
    calls = []
    real = socket.socket.sendfile

    def spy(self, file, offset=0, count=None):
        calls.append((offset, count))
        return real(self, file, offset, count)

    monkeypatch.setattr(socket.socket, "sendfile", spy)
    return calls


@pytest.fixture
def file_server(files):
    """A devserver Server with a MediaHandler over ``files``, in a thread of this process."""
    with serving(MediaHandler(files)) as server:
        yield server


def test_a_body_sent_with_sendfile_is_the_file(file_server, files, sendfile_calls):
    status, headers, body = fetch(file_server.bind_addr[1], "/big.bin")
    assert status == 200
    assert body == (files / "big.bin").read_bytes()
    assert sendfile_calls == [(0, BIG)]


@pytest.mark.parametrize(
    "spec, first, last", [("bytes=1000-2999999", 1000, 2999999), ("bytes=-4096", BIG - 4096, BIG - 1)]
)
def test_a_range_sent_with_sendfile_is_the_slice(file_server, files, sendfile_calls, spec, first, last):
    status, headers, body = fetch(file_server.bind_addr[1], "/big.bin", headers={"Range": spec})
    assert status == 206
    assert body == (files / "big.bin").read_bytes()[first : last + 1]
    assert headers["Content-Range"] == f"bytes {first}-{last}/{BIG}"
    assert sendfile_calls == [(first, last - first + 1)]


@pytest.mark.parametrize("holding_the_gil", [True, False])
def test_a_small_file_goes_out_with_its_headers_in_one_send(file_server, sendfile_calls, monkeypatch, holding_the_gil):
    from devserver import gil_io

    sends = []
    real, real_gil = socket.socket.send, gil_io.send

    def spy(self, data, *args):
        sends.append(bytes(data))
        return real(self, data, *args)

    def gil_spy(fd, data):
        sends.append(bytes(data))
        return real_gil(fd, data)

    monkeypatch.setattr(socket.socket, "send", spy)
    monkeypatch.setattr(gil_io, "send", gil_spy)
    monkeypatch.setattr(gil_io, "AVAILABLE", holding_the_gil and gil_io.AVAILABLE)
    status, _, body = fetch(file_server.bind_addr[1], "/small.txt")
    assert (status, body) == (200, b"small\n")
    assert len(sends) == 1 and sends[0].startswith(b"HTTP/1.1 200 OK\r\n") and sends[0].endswith(b"\r\n\r\nsmall\n")
    assert sendfile_calls == []


def test_keep_alive_survives_head_on_a_django_view(cherrypy_live_server):
    connection = http.client.HTTPConnection(
        cherrypy_live_server.thread.host, cherrypy_live_server.thread.port, timeout=10
    )
    try:
        status, headers, body = fetch(None, "/", "HEAD", connection=connection)
        assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
        status, _, body = fetch(None, "/sleep/?seconds=0", connection=connection)
        assert status == 200 and "slept" in json.loads(body)
    finally:
        connection.close()


def test_head_on_a_django_view_sends_no_body(cherrypy_live_server):
    with socket.create_connection(
        (cherrypy_live_server.thread.host, cherrypy_live_server.thread.port), timeout=5
    ) as client:
        client.sendall(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert rest == b""


def test_django_file_response_goes_out_with_sendfile(cherrypy_live_server, settings, sendfile_calls):
    picture = (ROOT / "tests/project/media/picture.png").read_bytes()
    status, headers, body = fetch(cherrypy_live_server.thread.port, "/test/file-response/")
    assert (status, body) == (200, picture)
    assert sendfile_calls == [(0, len(picture))]


def open_descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count descriptors")
@pytest.mark.slow
def test_an_interrupted_download_leaves_no_descriptor_open(tmp_path, start_server):
    media = tmp_path / "media"
    media.mkdir()
    with open(media / "huge.bin", "wb") as file:
        file.truncate(256 * 1024 * 1024)  # sparse: more than loopback buffers hold
    # Refcounting would close a forgotten file anyway; the ResourceWarning it prints then shows the leak.
    server = start_server(
        "127.0.0.1:0", "--noreload", DJANGO_MEDIA_ROOT=str(media), PYTHONWARNINGS="always::ResourceWarning"
    )
    pid = server.process.pid
    assert fetch(server.port, "/media/app-missing")[0] == 404  # warm up: workers, imports
    time.sleep(0.2)  # the server closes its side of that connection
    before = open_descriptors(pid)

    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(b"GET /media/huge.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            client.recv(1024 * 1024)
            time.sleep(0.2)  # the file is open and being sent
            assert open_descriptors(pid) > before
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    eventually(
        lambda: open_descriptors(pid) <= before,
        interval=0.05,
        context=lambda: f"{open_descriptors(pid)} descriptors open, {before} before",
    )
    assert fetch(server.port, "/media/huge.bin", "HEAD")[0] == 200  # still serving
    assert server.stop() == 0
    assert "Traceback" not in server.output
    assert "ResourceWarning" not in server.output


def test_a_precompressed_sibling_is_served_over_http(server):
    css = (ROOT / "tests/project/static/project/site.css").read_bytes()
    status, headers, body = fetch(
        server.port, "/static/project/site.css", headers={"Accept-Encoding": "gzip, deflate, br"}
    )
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == css
    status, headers, body = fetch(server.port, "/static/project/site.css")
    assert (headers["Content-Encoding"], body) == (None, css)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_compressed_gets_the_sibling(server):
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--compressed",
            "--dump-header",
            "-",
            f"{server.url}static/project/site.css",
        ],
        capture_output=True,
        timeout=10,
    )
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head
    assert body == (ROOT / "tests/project/static/project/site.css").read_bytes()


@pytest.fixture
def tls_file_server(files):
    import trustme

    from devserver.http.tls import TLSAdapter

    issued = trustme.CA().issue_cert("127.0.0.1")
    with issued.cert_chain_pems[0].tempfile() as cert, issued.private_key_pem.tempfile() as key:
        adapter = TLSAdapter(cert, key)
    with serving(MediaHandler(files), ssl_adapter=adapter) as server:
        yield server


def test_over_tls_a_body_goes_in_blocks_not_sendfile(tls_file_server, files, sendfile_calls):
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connection = http.client.HTTPSConnection("127.0.0.1", tls_file_server.bind_addr[1], timeout=15, context=context)
    try:
        connection.request("GET", "/big.bin", headers={"Range": "bytes=100-"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 206
    assert body == (files / "big.bin").read_bytes()[100:]
    assert sendfile_calls == []


class TestRulesOverHTTP:
    """The rules of tests/test_media.py that a client meets on the wire, against a real server."""

    @pytest.fixture
    def root(self, tmp_path):
        (tmp_path / "digits.txt").write_bytes(b"0123456789")
        (tmp_path / "café ünïcode.txt").write_text("accents\n")
        return tmp_path

    @pytest.fixture
    def port(self, root):
        with serving(MediaHandler(root, cache_control="no-cache")) as server:
            yield server.bind_addr[1]

    def test_validators_cache_control_and_accept_ranges(self, port):
        status, headers, body = fetch(port, "/digits.txt")
        assert (status, body) == (200, b"0123456789")
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["Cache-Control"] == "no-cache"
        status, headers, body = fetch(port, "/digits.txt", headers={"If-None-Match": headers["ETag"]})
        assert (status, body, headers["Cache-Control"]) == (304, b"", "no-cache")

    @pytest.mark.parametrize(
        "range_, status, body, content_range",
        [
            ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
            ("bytes=-3", 206, b"789", "bytes 7-9/10"),
            ("bytes=8-100", 206, b"89", "bytes 8-9/10"),
            ("bytes=10-", 416, None, "bytes */10"),
            ("bytes=0-1,4-5", 200, b"0123456789", None),
            ("lines=1-2", 200, b"0123456789", None),
        ],
    )
    def test_ranges(self, port, range_, status, body, content_range):
        got_status, headers, got_body = fetch(port, "/digits.txt", headers={"Range": range_})
        assert got_status == status
        assert headers["Content-Range"] == content_range
        if body is not None:
            assert got_body == body

    def test_if_range(self, port):
        etag = fetch(port, "/digits.txt")[1]["ETag"]
        assert fetch(port, "/digits.txt", headers={"Range": "bytes=0-0", "If-Range": etag})[0] == 206
        assert fetch(port, "/digits.txt", headers={"Range": "bytes=0-0", "If-Range": '"stale"'})[0] == 200

    def test_a_utf8_name_requested_percent_encoded(self, port):
        status, _, body = fetch(port, "/caf%C3%A9%20%C3%BCn%C3%AFcode.txt")
        assert (status, body) == (200, b"accents\n")

    def test_files_written_and_changed_under_the_running_server(self, port, root):
        assert fetch(port, "/late.txt")[0] == 404
        (root / "late.txt").write_text("first\n")
        status, headers, body = fetch(port, "/late.txt")
        assert (status, body) == (200, b"first\n")
        mtime_ns = (root / "late.txt").stat().st_mtime_ns
        time.sleep(0.02)
        (root / "late.txt").write_text("again\n")  # same size, and within the same second
        os.utime(root / "late.txt", ns=(mtime_ns, mtime_ns))
        status, changed, body = fetch(port, "/late.txt", headers={"If-None-Match": headers["ETag"]})
        assert (status, body) == (200, b"again\n")
        assert changed["ETag"] != headers["ETag"]


@pytest.mark.slow
def test_a_download_cut_off_for_reading_too_slowly_is_logged_with_the_bytes_sent(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="django.server")
    size = 64 * 1024 * 1024
    with open(tmp_path / "huge.bin", "wb") as file:
        file.truncate(size)  # sparse; far more than the socket buffers hold
    with (
        serving(MediaHandler(tmp_path), timeout=1) as server,
        socket.create_connection(("127.0.0.1", server.bind_addr[1]), timeout=10) as client,
    ):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: h\r\n\r\n")
        received = len(client.recv(65536))  # then it reads no more: the server's 1 s timeout ends it
        eventually(lambda: [r for r in caplog.records if "huge.bin" in r.getMessage()], timeout=10, interval=0.05)
    (record,) = [r for r in caplog.records if "huge.bin" in r.getMessage()]
    match = re.fullmatch(
        r'127\.0\.0\.1 "GET /huge\.bin HTTP/1\.1" 200 (\d+) [0-9.]+ ms \(cut off; (\d+) announced\)',
        record.getMessage(),
    )
    assert match, record.getMessage()
    sent, announced = int(match[1]), int(match[2])
    assert announced == size and received <= sent < size  # finding: it was logged "200 0"
    assert record.levelname == "WARNING"
