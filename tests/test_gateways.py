"""The CGI script and the SCGI server on their own, without a front server: what they write, what bad input gets,
and the limits. ``test_front_servers.py`` runs them behind Apache and nginx."""

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from devserver import scgi
from devserver.gateway import GatewayHandler

from .front import scgi_request
from .http import raw_request
from .process import ROOT, manage, manage_env
from .waiting import eventually

PICTURE = ROOT / "tests/project/media/picture.png"


def cgi_environ(path, method="GET", script_name="/cgi-bin/site.cgi", **extra):
    """What Apache's mod_cgi sets for a request (RFC 3875 §4.1)."""
    return {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        **extra,
    }


@pytest.fixture
def cgi_script(tmp_path):
    """The script ``cgi_script`` writes for the tests' project; ``run(environ, body=b"")`` runs it as mod_cgi does
    and returns ``(status line, headers, body, stderr, peak resident KiB)``."""
    path = tmp_path / "site.cgi"
    done = manage(tmp_path, "cgi_script", "--output", str(path))
    assert done.returncode == 0, done.stderr

    def run(environ, body=b""):
        env = {"PATH": os.environ["PATH"], **environ}
        env.setdefault("DJANGO_DATABASE", str(tmp_path / "db.sqlite3"))
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
        process = subprocess.Popen(
            [str(path)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/"
        )
        threading.Thread(target=lambda: (process.stdin.write(body), process.stdin.close()), daemon=True).start()
        errors = []
        reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
        reader.start()
        output = process.stdout.read()
        process.stdout.close()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        reader.join(10)
        process.stderr.close()
        assert process.returncode == 0
        head, _, content = output.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return lines[0], headers, content, errors[0].decode(), usage.ru_maxrss

    run.path = path
    return run


def test_cgi_script_is_an_executable_for_this_interpreter_and_project(cgi_script):
    text = cgi_script.path.read_text()
    assert os.stat(cgi_script.path).st_mode & 0o777 == 0o755
    assert text.startswith(f"#!{sys.executable} -I\n")
    assert f"sys.path.insert(0, {str(ROOT)!r})" in text and "'tests.project.settings'" in text
    # The bytecode of the project was compiled, for a front server's user who cannot write it.
    assert list((ROOT / "tests/project/__pycache__").glob("views.*.pyc"))


def test_cgi_answers_with_a_status_line_and_carries_the_script_prefix(cgi_script):
    status, headers, body, errors, _ = cgi_script(cgi_environ("/"))
    assert status == "Status: 200 OK" and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'src="/cgi-bin/site.cgi/media/picture.png"' in body
    assert b'href="/cgi-bin/site.cgi/static/project/site.css"' in body
    assert int(headers["Content-Length"]) == len(body)
    # A redirect made by a view carries the prefix too (CommonMiddleware's APPEND_SLASH).
    status, headers, _, _, _ = cgi_script(cgi_environ("/sleep"))
    assert status == "Status: 301 Moved Permanently" and headers["Location"] == "/cgi-bin/site.cgi/sleep/"
    assert errors == ""


def test_cgi_head_has_no_body(cgi_script):
    """wsgiref writes whatever the application yields, and Django yields a body for HEAD; Apache drops it, other
    front servers may not (RFC 9110 §9.3.2)."""
    _, get_headers, get_body, _, _ = cgi_script(cgi_environ("/"))
    status, headers, body, _, _ = cgi_script(cgi_environ("/", method="HEAD"))
    assert (status, body) == ("Status: 200 OK", b"")
    assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))
    status, headers, body, _, _ = cgi_script(cgi_environ("/media/picture.png", method="HEAD"))
    assert (status, headers["Content-Length"], body) == ("Status: 200 OK", str(PICTURE.stat().st_size), b"")


def test_cgi_error_is_a_500_without_a_traceback(cgi_script):
    """A project that cannot load: the front server gets a 500 with a plain body; the traceback goes to standard
    error (the front server's error log)."""
    status, headers, body, errors, _ = cgi_script(cgi_environ("/", DJANGO_SETTINGS_MODULE="tests.nowhere"))
    assert status == "Status: 500 Internal Server Error"
    assert body == b"A server error occurred." and headers["Content-Length"] == str(len(body))
    assert "Traceback" in errors and "ModuleNotFoundError: No module named 'tests.nowhere'" in errors


@pytest.mark.slow
def test_cgi_streams_a_large_file_in_constant_memory(cgi_script, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    with open(media / "big.bin", "wb") as file:
        file.truncate(100 * 1024 * 1024)
    _, _, small, _, baseline = cgi_script(cgi_environ("/media/picture.png", DJANGO_MEDIA_ROOT=str(media)))
    status, headers, body, _, peak = cgi_script(cgi_environ("/media/big.bin", DJANGO_MEDIA_ROOT=str(media)))
    assert status == "Status: 200 OK" and headers["Content-Length"] == str(100 * 1024 * 1024)
    assert len(body) == 100 * 1024 * 1024 and body.count(0) == len(body)
    assert peak - baseline < 16 * 1024, f"peak {peak} KiB against {baseline} KiB for a small file"


def test_cgi_post_body_reaches_the_application(cgi_script):
    """A POST without the CSRF cookie reaches Django with its body, and gets Django's 403, not a server error."""
    form = b"username=a&password=b"
    status, _, body, errors, _ = cgi_script(
        cgi_environ("/admin/login/", method="POST", CONTENT_TYPE="application/x-www-form-urlencoded"), form
    )
    assert status == "Status: 403 Forbidden" and b"CSRF" in body
    assert "Traceback" not in errors


# SCGI: the parser, on bytes.


def netstring(variables, body=b""):
    header = b"".join(name + b"\0" + value + b"\0" for name, value in variables)
    return str(len(header)).encode() + b":" + header + b"," + body


def reading(data, size=7):
    """``recv`` over ``data``, a few bytes at a time, as a socket may give it."""
    stream = io.BytesIO(data)
    return lambda _: stream.read(size)


def test_scgi_request_is_read_whole():
    data = netstring([(b"CONTENT_LENGTH", b"5"), (b"SCGI", b"1"), (b"REQUEST_METHOD", b"POST")], b"hello")
    variables, body = scgi.read_request(reading(data))
    with body:
        assert variables["REQUEST_METHOD"] == b"POST" and body.read() == b"hello"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"12x:nonsense,", id="bad length"),
        pytest.param(b"99999999999999999:", id="huge length"),
        pytest.param(netstring([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1")])[:-1] + b";", id="bad terminator"),
        pytest.param(b"5:CONTE,", id="variables not NUL-terminated"),
        pytest.param(netstring([(b"REQUEST_METHOD", b"GET")]), id="no CONTENT_LENGTH"),
        pytest.param(netstring([(b"CONTENT_LENGTH", b"-1"), (b"SCGI", b"1")]), id="negative CONTENT_LENGTH"),
        pytest.param(netstring([(b"CONTENT_LENGTH", b"0")]), id="no SCGI variable"),
        pytest.param(netstring([(b"CONTENT_LENGTH", b"10"), (b"SCGI", b"1")], b"short"), id="body shorter"),
        pytest.param(b"", id="nothing"),
        pytest.param(b"300:" + b"x" * 100, id="variables cut short"),
    ],
)
def test_malformed_scgi_is_an_error(data):
    with pytest.raises(scgi.SCGIError):
        scgi.read_request(reading(data))


def test_scgi_limits():
    big = netstring([(b"CONTENT_LENGTH", b"0"), (b"SCGI", b"1"), (b"HTTP_X", b"x" * 5000)])
    with pytest.raises(scgi.SCGIError):
        scgi.read_request(reading(big, 4096), max_header_size=4096)
    with pytest.raises(scgi.ContentTooLarge):
        scgi.read_request(reading(netstring([(b"CONTENT_LENGTH", b"1001"), (b"SCGI", b"1")])), max_body_size=1000)


def test_a_large_scgi_body_goes_to_a_temporary_file():
    data = netstring([(b"CONTENT_LENGTH", b"200000"), (b"SCGI", b"1")], b"z" * 200000)
    _, body = scgi.read_request(reading(data, 65536))
    with body:
        assert body._rolled and body.read() == b"z" * 200000


@pytest.mark.parametrize(
    ("variables", "script_name", "path_info"),
    [
        ({"REQUEST_URI": "/a%20b/%C3%A9?x=1"}, "", "/a b/\xc3\xa9"),  # nginx: no SCRIPT_NAME, no PATH_INFO
        ({"REQUEST_URI": "/app/x/", "SCRIPT_NAME": "/app"}, "/app", "/x/"),  # nginx with scgi_param SCRIPT_NAME
        ({"REQUEST_URI": "/admin/login/?next=/", "SCRIPT_NAME": "/admin/login/"}, "", "/admin/login/"),  # Apache
        ({"REQUEST_URI": "/", "SCRIPT_NAME": "/"}, "", "/"),  # Apache, at the root
        ({"REQUEST_URI": "/x", "SCRIPT_NAME": "/cgi", "PATH_INFO": "/given"}, "/cgi", "/given"),  # as sent
    ],
)
def test_scgi_environ_paths(variables, script_name, path_info):
    environ = scgi.wsgi_environ({name: value.encode("latin-1") for name, value in variables.items()})
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)
    assert environ["QUERY_STRING"] == "" and environ["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_gateway_handler_leaves_the_process_environment_out(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    out = io.BytesIO()
    handler = scgi.SCGIHandler(io.BytesIO(), {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, stream=out)
    handler.run(app)
    assert "SECRET_TOKEN" not in seen and "PATH" not in seen
    assert out.getvalue() == b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    assert isinstance(handler, GatewayHandler)


# The long-running server and --inetd, as processes.


def request_variables(path="/", method="GET", **extra):
    return {
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "HTTP_HOST": "127.0.0.1",
        **extra,
    }


@pytest.mark.slow
def test_runscgi_serves_and_keeps_serving_after_bad_input(runscgi):
    running = runscgi("127.0.0.1:0", "--header-timeout", "1", "--max-body-size", "1000")
    assert running.url.startswith("scgi://127.0.0.1:")
    response = scgi_request(running.port, request_variables("/test/client/"))
    assert response.startswith(b"Status: 200 OK\r\n") and b'"remote_addr": "192.0.2.7"' in response

    descriptors = len(os.listdir(f"/proc/{running.process.pid}/fd"))
    bad = [
        b"12x:nonsense,",
        b"5:CONTE,",
        netstring([(b"REQUEST_METHOD", b"GET")]),
        netstring([(b"CONTENT_LENGTH", b"10"), (b"SCGI", b"1")], b"short"),
    ]
    for data in bad:
        assert raw_request(running.port, data, end_of_input=True) == b""  # closed, unanswered
    # A front server that goes silent in the middle of a body: closed after --header-timeout, while others are served.
    silent = socket.create_connection(("127.0.0.1", running.port))
    silent.sendall(netstring([(b"CONTENT_LENGTH", b"10"), (b"SCGI", b"1")], b"short"))
    started = time.monotonic()
    assert scgi_request(running.port, request_variables("/test/pid/")).startswith(b"Status: 200 OK")
    silent.settimeout(10)
    assert silent.recv(100) == b""
    assert 0.5 < time.monotonic() - started < 5
    silent.close()
    # Past --max-body-size: 413 before the body is read.
    response = scgi_request(running.port, request_variables("/", "POST"), b"x" * 1001)
    assert response.startswith(b"Status: 413 Content Too Large\r\n")
    assert scgi_request(running.port, request_variables("/test/pid/")).startswith(b"Status: 200 OK")
    assert running.wait_for("SCGI connection closed unanswered: the front server sent nothing for 1")
    # Nothing leaked, once the server has closed the last connections (it closes a connection after the client
    # has its answer: the count may lag behind).
    eventually(lambda: len(os.listdir(f"/proc/{running.process.pid}/fd")) <= descriptors)
    assert "Traceback" not in running.output


@pytest.mark.slow
def test_runscgi_serves_slow_requests_side_by_side(runscgi):
    running = runscgi("127.0.0.1:0")
    results = []

    def slow():
        results.append(scgi_request(running.port, request_variables("/sleep/", QUERY_STRING="seconds=1")))

    threads = [threading.Thread(target=slow) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 8 and all(result.startswith(b"Status: 200 OK") for result in results)
    assert time.monotonic() - started < 5  # one after another: 8 s


@pytest.mark.slow
def test_runscgi_stops_gracefully(runscgi):
    running = runscgi("127.0.0.1:0")
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            scgi_request(running.port, request_variables("/sleep/", QUERY_STRING="seconds=1"))
        )
    )
    thread.start()
    time.sleep(0.3)
    assert running.stop() == 0
    thread.join(10)
    assert results and results[0].startswith(b"Status: 200 OK")


def inetd(tmp_path, stdin, **env):
    return subprocess.Popen(
        [sys.executable, "manage.py", "runscgi", "--inetd"],
        cwd=ROOT,
        env=manage_env(tmp_path, **env),
        stdin=stdin,
        stdout=stdin if isinstance(stdin, socket.socket) else subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def request_bytes(variables, body=b""):
    variables = {"CONTENT_LENGTH": str(len(body)), "SCGI": "1", **variables}
    return netstring([(name.encode(), value.encode()) for name, value in variables.items()], body)


def test_runscgi_inetd_answers_the_connection_on_standard_input(tmp_path):
    ours, theirs = socket.socketpair()
    process = inetd(tmp_path, theirs)
    theirs.close()
    with ours:
        ours.sendall(request_bytes(request_variables("/media/picture.png")))
        ours.settimeout(30)
        response = b""
        while chunk := ours.recv(65536):
            response += chunk
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK\r\n") and body == PICTURE.read_bytes()


def test_runscgi_inetd_on_a_pipe_answers_on_standard_output(tmp_path):
    process = inetd(tmp_path, subprocess.PIPE)
    output, errors = process.communicate(request_bytes(request_variables("/", "HEAD")), timeout=30)
    assert process.returncode == 0, errors
    assert output.startswith(b"Status: 200 OK\r\n") and output.endswith(b"\r\n\r\n")
    # Malformed: nothing is written, the reason is logged.
    process = inetd(tmp_path, subprocess.PIPE)
    output, errors = process.communicate(b"12x:", timeout=30)
    assert output == b"" and b"SCGI connection closed unanswered" in errors and b"Traceback" not in errors


def test_runscgi_inetd_refuses_a_listening_socket(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    with listener:
        process = inetd(tmp_path, listener)
        _, errors = process.communicate(timeout=30)
    assert process.returncode == 1
    assert errors.decode().strip().startswith("CommandError: standard input is a listening socket")


@pytest.mark.parametrize(
    "args",
    [("--certificate", "x.pem"), ("--self-signed",), ("--access-log", "-"), ("--forwarded-allow-ips", "*")],
)
def test_runscgi_refuses_what_is_for_http(tmp_path, args):
    result = manage(tmp_path, "runscgi", "--noreload", *args)
    assert result.returncode == 1
    message = "is for HTTP: under SCGI the front server speaks HTTP and TLS and keeps the access log."
    assert result.stderr.strip() == f"CommandError: {args[0]} {message}"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/media",
        "/media/",
        "/media/a.png",
        "/mediax/a",
        "/static/admin/css/base.css",
        "/static",
        "/staticx",
        "/a/media/b",
        "/media/static/x",
    ],
)
def test_the_gateways_dispatch_as_cheroot_does(path):
    """``devserver.gateway.PathDispatcher`` stands in for ``cheroot.wsgi.PathInfoDispatcher`` (so that a CGI
    process does not import cheroot): the same application and the same SCRIPT_NAME and PATH_INFO for each path;
    a change in cheroot's dispatch fails here."""
    from cheroot.wsgi import PathInfoDispatcher

    from devserver.gateway import PathDispatcher

    def app(name):
        return lambda environ, start_response: (name, environ["SCRIPT_NAME"], environ["PATH_INFO"])

    apps = [("", app("django")), ("/media", app("media")), ("/static/", app("static")), ("/static/admin", app("admin"))]
    environ = {"SCRIPT_NAME": "/cgi-bin/site.cgi", "PATH_INFO": path}
    assert PathDispatcher(list(apps))(dict(environ), None) == PathInfoDispatcher(list(apps))(dict(environ), None)


def test_cgi_script_writes_the_interpreter_normalised_and_warns_when_others_cannot_run_it(tmp_path, request):
    """Apache runs the script as its own user and says only ``AH01241: exec of ... failed (Permission denied)``
    when the interpreter lies in a folder that user may not enter (a virtualenv under /root)."""
    python = Path(sys.executable).parent / ".." / "bin" / Path(sys.executable).name
    done = manage(tmp_path, "cgi_script", "--python", str(python))
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == f"#!{os.path.normpath(python)} -I"
    base = Path(tempfile.mkdtemp(prefix="runcherrypy-cgi-"))  # pytest's own folders are root's alone
    base.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    private = base / "private"
    (private / "bin").mkdir(parents=True)
    interpreter = private / "bin" / "python"
    interpreter.write_text("#!/bin/sh\n")
    interpreter.chmod(0o755)
    private.chmod(0o700)
    done = manage(tmp_path, "cgi_script", "--python", str(interpreter), "--output", str(tmp_path / "site.cgi"))
    assert done.returncode == 0  # written all the same: the front server may run as this user
    assert (
        f"Warning: The interpreter {interpreter} is inside {private}, which other users may not enter (mode 700)"
        in (done.stderr)
    )
    private.chmod(0o755)
    interpreter.chmod(0o700)
    done = manage(tmp_path, "cgi_script", "--python", str(interpreter), "--output", str(tmp_path / "site.cgi"))
    assert f"Warning: The interpreter {interpreter} is not executable by other users (mode 700)" in done.stderr
