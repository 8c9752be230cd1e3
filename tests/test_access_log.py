"""The access log: through ``django.server`` (the default), to a file reopened on SIGUSR1, or none."""

import json
import os
import re
import signal

from devserver.access_log import FileAccessLog

from .http import fetch
from .process import manage
from .waiting import eventually

LINE = re.compile(
    r'(?P<client>\S+) - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r"(?P<size>\d+) (?P<duration>\d+\.\d{6})(?P<cut> cut-off\S*)?"
)


def wait_for_lines(path, count, timeout=5):
    """The lines of the file at ``path``, once there are ``count`` or more."""

    def enough():
        lines = path.read_text().splitlines() if path.exists() else []
        return lines if len(lines) >= count else None

    return eventually(enough, timeout, interval=0.05)


def test_a_file_log_is_reopened_when_asked(tmp_path):
    path = tmp_path / "access.log"
    log = FileAccessLog(str(path))
    log.log("192.0.2.1", "GET / HTTP/1.1", 200, 12, 0.0021)
    path.rename(tmp_path / "access.log.1")
    log.log("192.0.2.1", "GET /still HTTP/1.1", 200, 12, 0.0021)  # into the renamed file, until asked
    log.reopen()
    log.log("192.0.2.2", "GET /big HTTP/1.1", 200, 4096, 1.5, announced=100000, cut_off=True)
    log.log("192.0.2.3", 'GET /a"b\\c HTTP/1.1', 404, 0, 0.001)  # a client's quote cannot end the field
    log.close()
    old = (tmp_path / "access.log.1").read_text().splitlines()
    assert [LINE.fullmatch(line)["request"] for line in old] == ["GET / HTTP/1.1", "GET /still HTTP/1.1"]
    line, quoted = path.read_text().splitlines()
    assert LINE.fullmatch(quoted)["request"] == r"GET /a\x22b\x5Cc HTTP/1.1"
    match = LINE.fullmatch(line)
    assert match.group("client", "status", "size", "duration", "cut") == (
        "192.0.2.2",
        "200",
        "4096",
        "1.500000",
        " cut-off/100000",
    )


def test_access_log_to_a_file_and_sigusr1(start_server, tmp_path):
    path = tmp_path / "access.log"
    running = start_server("127.0.0.1:0", "--noreload", "--access-log", str(path))
    fetch(running.url, "/test/headers/", headers={"X-Forwarded-For": "198.51.100.1"})
    (line,) = wait_for_lines(path, 1)
    match = LINE.fullmatch(line)
    assert match.group("client", "request", "status") == ("198.51.100.1", "GET /test/headers/ HTTP/1.1", "200")
    assert float(match["duration"]) < 5
    assert "GET /test/headers/" not in running.output  # not through django.server as well

    path.rename(tmp_path / "access.log.1")
    running.signal(signal.SIGUSR1)

    def reopened():
        if path.exists():  # reopened at the next line
            return True
        fetch(running.url, "/missing/")
        return False

    eventually(reopened, interval=0.05)
    lines = wait_for_lines(path, 1)
    assert lines and LINE.fullmatch(lines[0])["status"] == "404"
    assert len((tmp_path / "access.log.1").read_text().splitlines()) == 1
    assert running.stop() == 0  # SIGUSR1 did not stop it


def test_no_access_log(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--no-access-log")
    assert fetch(running.url, "/test/headers/")[0] == 200
    assert fetch(running.url, "/missing/")[0] == 404
    assert running.stop() == 0
    assert '"GET /test/headers/' not in running.output and '"GET /missing/' not in running.output
    assert "Not Found: /missing/" in running.output  # Django's own logging goes on


def test_access_log_errors_are_one_line(tmp_path):
    for args, message in [
        (["--access-log", str(tmp_path / "missing" / "access.log")], "CommandError: Cannot open the access log "),
        (["--access-log", "-", "--no-access-log"], "CommandError: Give either --access-log or --no-access-log"),
    ]:
        result = manage(tmp_path, "runcherrypy", "127.0.0.1:0", "--noreload", "--skip-checks", *args)
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
        assert "Traceback" not in result.stderr


def test_combined_and_json_lines(tmp_path):
    """combined: the referer and the user agent after the common fields, quoted and escaped; json: one object a
    line, escaped by the JSON encoder, so that a client's quotes, backslashes or line ends forge nothing."""
    agent = 'curl/8 "x" \\ \n{"status": 200}\x85caf\xe9'
    combined, lines = tmp_path / "combined.log", tmp_path / "json.log"
    for path, form in ((combined, "combined"), (lines, "json")):
        log = FileAccessLog(str(path), form=form)
        log.log("192.0.2.1", "GET /a?b=1 HTTP/1.1", 200, 12, 0.0021, referer="https://example.com/", agent=agent)
        log.log("192.0.2.2", "-", 408, 16, 0.0)
        log.close()
    first, second = combined.read_text().splitlines()
    # Past ASCII escaped too: U+0085 (NEL) is a line end to str.splitlines() and to log readers.
    assert first.endswith(
        ' "https://example.com/" "curl/8 \\x22x\\x22 \\x5C \\x0A{\\x22status\\x22: 200}\\x85caf\\xE9"'
    )
    assert len(combined.read_text().splitlines()) == 2
    assert LINE.match(first)["request"] == "GET /a?b=1 HTTP/1.1" and second.endswith(' "-" "-"')
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(records) == 2
    assert {key: records[0][key] for key in records[0] if key not in ("time", "worker")} == {
        "client": "192.0.2.1",
        "method": "GET",
        "path": "/a",
        "query": "b=1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 12,
        "duration_ms": 2.1,
        "referer": "https://example.com/",
        "user_agent": agent,
    }
    assert records[0]["worker"] == os.getpid() and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", records[0]["time"]
    )
    assert records[1]["status"] == 408 and records[1]["method"] is None


def test_the_access_log_format_from_the_command_line(start_server, tmp_path):
    path = tmp_path / "access.log"
    running = start_server("127.0.0.1:0", "--noreload", "--access-log", str(path), "--access-log-format", "json")
    fetch(running.url, "/test/headers/?x=1", headers={"User-Agent": "tester/1", "Referer": "http://r/"})
    (line,) = wait_for_lines(path, 1)
    record = json.loads(line)
    assert (record["path"], record["query"], record["user_agent"], record["referer"]) == (
        "/test/headers/",
        "x=1",
        "tester/1",
        "http://r/",
    )
    assert record["status"] == 200 and record["worker"] == running.process.pid
    result = manage(tmp_path, "runcherrypy", "--noreload", "--access-log-format", "xml")
    assert result.returncode == 1
    assert "--access-log-format: expected one of common, combined, json, got 'xml'" in result.stderr


def test_the_fields_are_attributes_of_the_log_record(caplog):
    from devserver.access_log import LoggerAccessLog

    caplog.set_level("INFO", logger="django.server")
    LoggerAccessLog().log("192.0.2.1", "GET /x?y HTTP/1.1", 200, 3, 0.001, referer="http://r/", agent="ua")
    (record,) = caplog.records
    assert (record.method, record.path, record.query, record.user_agent, record.referer, record.bytes) == (
        "GET",
        "/x",
        "y",
        "ua",
        "http://r/",
        3,
    )
