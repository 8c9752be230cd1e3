"""MediaHandler and FinderHandler over plain WSGI calls, on real files."""

import os
import time

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.utils.http import http_date

from devserver.media import BLOCK_SIZE, FinderHandler, MediaHandler, content_type, describe, relative_path

from .wsgi import call, environ_for


@pytest.fixture
def root(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "hello.txt").write_text("hello, world\n")
    (media / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (media / "sub").mkdir()
    (media / "sub" / "data.bin").write_bytes(os.urandom(3 * BLOCK_SIZE + 17))
    (tmp_path / "secret.txt").write_text("outside the root\n")
    return media


@pytest.fixture
def app(root):
    return MediaHandler(root)


def test_serves_a_file_with_type_length_and_validators(app, root):
    response = call(app, "/hello.txt")
    st = (root / "hello.txt").stat()
    assert response.status == "200 OK"
    assert response.body == b"hello, world\n"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Content-Length") == str(st.st_size)
    assert response.header("Last-Modified") == http_date(st.st_mtime)
    etag = response.header("ETag")
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")


def test_serves_a_binary_file_in_a_subfolder(app, root):
    response = call(app, "/sub/data.bin")
    assert response.status_code == 200
    assert response.body == (root / "sub" / "data.bin").read_bytes()
    assert response.header("Content-Type") == "application/octet-stream"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.png", "image/png"),
        ("a.css", "text/css; charset=utf-8"),
        ("a.html", "text/html; charset=utf-8"),
        ("a.js", ("text/javascript; charset=utf-8", "application/javascript; charset=utf-8")),
        ("a.css.gz", "application/gzip"),
        ("a.unknown-extension", "application/octet-stream"),
    ],
)
def test_content_type(name, expected):
    assert content_type(name) in (expected if isinstance(expected, tuple) else (expected,))


def test_head_sends_get_headers_and_no_body(app):
    get = call(app, "/pic.png")
    head = call(app, "/pic.png", method="HEAD")
    assert head.status_code == 200
    assert head.body == b""
    assert head.headers == get.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_get_405_with_allow(app, method):
    response = call(app, "/hello.txt", method=method)
    assert response.status_code == 405
    assert response.header("Allow") == "GET, HEAD"


class TestConditionalGet:
    @pytest.fixture
    def validators(self, app):
        response = call(app, "/hello.txt")
        return response.header("ETag"), response.header("Last-Modified")

    def assert_not_modified(self, response, validators):
        assert response.status_code == 304
        assert response.body == b""
        assert (response.header("ETag"), response.header("Last-Modified")) == validators

    def test_if_none_match_exact(self, app, validators):
        self.assert_not_modified(call(app, "/hello.txt", if_none_match=validators[0]), validators)

    def test_if_none_match_in_a_list(self, app, validators):
        header = f'"other", {validators[0]} , "third"'
        self.assert_not_modified(call(app, "/hello.txt", if_none_match=header), validators)

    def test_if_none_match_weak_comparison(self, app, validators):
        self.assert_not_modified(call(app, "/hello.txt", if_none_match="W/" + validators[0]), validators)

    def test_if_none_match_star(self, app, validators):
        self.assert_not_modified(call(app, "/hello.txt", if_none_match="*"), validators)

    def test_head_gets_304_too(self, app, validators):
        self.assert_not_modified(call(app, "/hello.txt", "HEAD", if_none_match=validators[0]), validators)

    def test_if_none_match_other_tag_is_200(self, app):
        assert call(app, "/hello.txt", if_none_match='"nope"').status_code == 200

    def test_if_none_match_takes_precedence_over_if_modified_since(self, app, validators):
        response = call(app, "/hello.txt", if_none_match='"nope"', if_modified_since=validators[1])
        assert response.status_code == 200

    def test_if_modified_since_echoed(self, app, validators):
        self.assert_not_modified(call(app, "/hello.txt", if_modified_since=validators[1]), validators)

    def test_if_modified_since_later(self, app, validators):
        later = http_date(time.time() + 3600)
        self.assert_not_modified(call(app, "/hello.txt", if_modified_since=later), validators)

    def test_if_modified_since_in_another_date_format(self, app, root, validators):
        # RFC 850 form of the same instant: parsed, not string-compared.
        mtime = time.gmtime((root / "hello.txt").stat().st_mtime)
        rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", mtime)
        self.assert_not_modified(call(app, "/hello.txt", if_modified_since=rfc850), validators)

    def test_if_modified_since_earlier_is_200(self, app, root):
        earlier = http_date((root / "hello.txt").stat().st_mtime - 1)
        assert call(app, "/hello.txt", if_modified_since=earlier).status_code == 200

    @pytest.mark.parametrize(
        "headers",
        [
            {"if_modified_since": "not a date"},
            {"if_modified_since": "Sun, 99 Foo 2024 99:99:99 GMT"},
            {"if_none_match": "no quotes"},
            {"if_none_match": ","},
        ],
    )
    def test_a_field_that_does_not_parse_is_ignored(self, app, headers):
        response = call(app, "/hello.txt", **headers)
        assert response.status_code == 200
        assert response.body == b"hello, world\n"


def test_a_changed_file_gets_a_new_etag_at_once(app, root):
    path = root / "hello.txt"
    first = call(app, "/hello.txt")
    st = path.stat()
    path.write_text("HELLO, WORLD\n")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    second = call(app, "/hello.txt", if_none_match=first.header("ETag"))
    assert second.status_code == 200
    assert second.body == b"HELLO, WORLD\n"
    assert second.header("ETag") != first.header("ETag")


def test_a_file_created_after_start_is_served(app, root):
    assert call(app, "/late.txt").status_code == 404
    (root / "late.txt").write_text("late\n")
    assert call(app, "/late.txt").body == b"late\n"


def test_a_utf8_file_name_is_found(app, root):
    (root / "café ünïcode.txt").write_text("accents\n")
    response = call(app, "/café ünïcode.txt")
    assert response.status_code == 200
    assert response.body == b"accents\n"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/sub/../hello.txt",  # stays inside, but `..` is refused outright
        "/./../secret.txt",
        "/..",
        "/%2e%2e/secret.txt",  # PATH_INFO is already percent-decoded: this is a literal name
        "/..%2fsecret.txt",
        "//etc/passwd",
        "/" + os.path.abspath("/etc/passwd"),
        "/hello.txt\x00.png",
        "/\x00",
        "/sub",
        "/sub/",
        "/",
        "",
        "/missing.txt",
        "/hello.txt/",
    ],
)
def test_not_found(app, root, path):
    response = call(app, path)
    assert response.status_code == 404
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.body == b"Not Found\n"
    assert str(root) not in response.body.decode()


def test_a_symlink_inside_the_root_is_followed(tmp_path, root):
    elsewhere = tmp_path / "app-media"
    elsewhere.mkdir()
    (elsewhere / "tile.png").write_bytes(b"tile")
    (root / "app").symlink_to(os.path.relpath(elsewhere, root))
    assert call(MediaHandler(root), "/app/tile.png").body == b"tile"


def test_a_file_that_cannot_be_read_is_403(app, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/somewhere/secret")

    monkeypatch.setattr("devserver.media.open", refuse, raising=False)
    response = call(app, "/hello.txt")
    assert response.status_code == 403
    assert b"somewhere" not in response.body


def test_streams_in_blocks_and_closes_the_file(root):
    app = MediaHandler(root, block_size=1000)
    started = []
    body = app(environ_for("/sub/data.bin"), lambda status, headers: started.append(status))
    blocks = list(body)
    assert started == ["200 OK"]
    assert max(len(block) for block in blocks) == 1000
    assert b"".join(blocks) == (root / "sub" / "data.bin").read_bytes()
    assert not body.file.closed  # the server closes it
    body.close()
    assert body.file.closed


def open_descriptors():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count descriptors")
def test_a_client_that_disconnects_leaves_no_descriptor(app):
    before = open_descriptors()
    body = app(environ_for("/sub/data.bin"), lambda status, headers: None)
    next(iter(body))  # one block sent, then the client goes away
    assert open_descriptors() == before + 1
    body.close()
    assert open_descriptors() == before


def test_block_size_must_be_positive(root):
    with pytest.raises(ValueError, match="block_size"):
        MediaHandler(root, block_size=0)


def test_describe_is_reused_while_the_stat_is_unchanged(root):
    path = str(root / "hello.txt")
    first = describe(path, os.stat(path))
    assert describe(path, os.stat(path)) is first
    os.utime(path, ns=(0, 10**18))
    assert describe(path, os.stat(path)) is not first


@pytest.mark.parametrize(
    "path_info, expected",
    [
        ("/a/b.png", os.path.join("a", "b.png")),
        ("//a//./b.png", os.path.join("a", "b.png")),
        ("/a/../b.png", None),
        ("/a\x00", None),
        ("/", None),
    ],
)
def test_relative_path(path_info, expected):
    assert relative_path(path_info) == expected


class TestFinderHandler:
    def test_serves_what_the_staticfiles_finders_find(self):
        response = call(FinderHandler(finders.find), "/admin/css/base.css")
        assert response.status_code == 200
        assert response.header("Content-Type") == "text/css; charset=utf-8"
        with open(finders.find("admin/css/base.css"), "rb") as file:
            assert response.body == file.read()

    @pytest.mark.parametrize("path", ["/admin/css/../../../settings.py", "/../cherrytest/settings.py", "/nope.css"])
    def test_not_found(self, path):
        assert call(FinderHandler(finders.find), path).status_code == 404

    def test_a_suspicious_path_from_the_finder_is_404(self):
        def suspicious(path):
            raise SuspiciousFileOperation(path)

        assert call(FinderHandler(suspicious), "/x.css").status_code == 404
