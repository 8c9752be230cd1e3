"""MediaHandler and FinderHandler over plain WSGI calls, on real files."""

import os
import time

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.utils.http import http_date

from devserver.media import (
    BLOCK_SIZE,
    IMMUTABLE,
    MEMORY_BODY_SIZE,
    UNSATISFIABLE,
    FinderHandler,
    MediaHandler,
    byte_range,
    content_type,
    describe,
    hashed_name,
    preferred_encoding,
    relative_path,
)

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


def test_a_relative_symlink_into_a_link_root_is_followed(tmp_path, root):
    elsewhere = tmp_path / "app-media"
    elsewhere.mkdir()
    (elsewhere / "tile.png").write_bytes(b"tile")
    (root / "app").symlink_to(os.path.relpath(elsewhere, root))  # as the sample links its app's media in
    assert call(MediaHandler(root, link_roots=[elsewhere]), "/app/tile.png").body == b"tile"
    assert call(MediaHandler(root), "/app/tile.png").status_code == 404


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


class TestRanges:
    @pytest.fixture(params=["small", "large"])
    def name(self, request, root):
        # A small file is held in memory; a large one is streamed from disk.
        if request.param == "small":
            (root / "digits.txt").write_bytes(b"0123456789")
            return "digits.txt"
        (root / "large.bin").write_bytes(bytes(range(256)) * 400)  # 102400 bytes
        return "large.bin"

    @pytest.fixture
    def content(self, root, name):
        return (root / name).read_bytes()

    def test_every_file_response_says_accept_ranges(self, app, name):
        assert call(app, "/" + name).header("Accept-Ranges") == "bytes"
        assert call(app, "/" + name, "HEAD").header("Accept-Ranges") == "bytes"

    @pytest.mark.parametrize(
        "spec, first, last",
        [
            ("bytes=0-0", 0, 0),
            ("bytes=2-5", 2, 5),
            ("bytes=3-", 3, None),
            ("bytes=-1", -1, None),
            ("bytes=-4", -4, None),
            ("bytes=0-99999999", 0, None),  # past the end: clamped
            (" bytes = 1 - 2 ", 1, 2),
            ("BYTES=1-2", 1, 2),
        ],
    )
    def test_one_range_is_206_with_the_exact_bytes(self, app, name, content, spec, first, last):
        size = len(content)
        start = first % size
        end = size - 1 if last is None else last
        response = call(app, "/" + name, range=spec)
        assert response.status == "206 Partial Content"
        assert response.body == content[start : end + 1]
        assert response.header("Content-Length") == str(end - start + 1)
        assert response.header("Content-Range") == f"bytes {start}-{end}/{size}"
        assert response.header("ETag") == call(app, "/" + name).header("ETag")

    @pytest.mark.parametrize("spec", ["bytes=99999999-", "bytes=-0", "bytes=102400-102401"])
    def test_an_unsatisfiable_range_is_416(self, app, name, content, spec):
        response = call(app, "/" + name, range=spec)
        if spec == "bytes=102400-102401" and len(content) > 102400:
            pytest.skip("satisfiable for this file")
        assert response.status_code == 416
        assert response.header("Content-Range") == f"bytes */{len(content)}"
        assert str(app.root) not in response.body.decode()

    @pytest.mark.parametrize(
        "spec", ["bytes=abc", "items=0-1", "bytes=5-2", "bytes=0-1,3-4", "bytes=", "bytes=1", "bytes=-", "bytes=²-3"]
    )
    def test_a_range_that_does_not_parse_or_several_ranges_are_ignored(self, app, name, content, spec):
        response = call(app, "/" + name, range=spec)
        assert response.status_code == 200
        assert response.body == content

    def test_if_range_with_the_current_etag_gives_206(self, app, name):
        etag = call(app, "/" + name).header("ETag")
        assert call(app, "/" + name, range="bytes=0-0", if_range=etag).status_code == 206

    def test_if_range_with_the_last_modified_date_gives_206(self, app, name):
        last_modified = call(app, "/" + name).header("Last-Modified")
        assert call(app, "/" + name, range="bytes=0-0", if_range=last_modified).status_code == 206

    @pytest.mark.parametrize("if_range", ['"stale"', "W/{etag}", "Thu, 01 Jan 1970 00:00:01 GMT", "garbage"])
    def test_a_stale_or_weak_if_range_gives_the_whole_file(self, app, name, content, if_range):
        etag = call(app, "/" + name).header("ETag")
        response = call(app, "/" + name, range="bytes=0-0", if_range=if_range.format(etag=etag))
        assert response.status_code == 200
        assert response.body == content

    def test_a_matching_if_none_match_still_gives_304(self, app, name):
        etag = call(app, "/" + name).header("ETag")
        assert call(app, "/" + name, range="bytes=0-0", if_none_match=etag).status_code == 304

    def test_head_ignores_range(self, app, name, content):
        response = call(app, "/" + name, "HEAD", range="bytes=0-0")
        assert response.status_code == 200
        assert response.header("Content-Length") == str(len(content))

    def test_any_range_of_an_empty_file_is_416(self, app, root):
        (root / "empty.txt").write_bytes(b"")
        response = call(app, "/empty.txt", range="bytes=0-")
        assert (response.status_code, response.header("Content-Range")) == (416, "bytes */0")
        assert call(app, "/empty.txt").body == b""


class TestPrecompressed:
    @pytest.fixture
    def siblings(self, root):
        (root / "app.js").write_bytes(b"console.log('identity');\n" * 10)
        (root / "app.js.gz").write_bytes(b"GZIP BYTES")
        (root / "app.js.br").write_bytes(b"BROTLI BYTES")
        (root / "style.css").write_bytes(b"body {}\n")
        (root / "style.css.gz").write_bytes(b"GZ CSS")
        return root

    @pytest.mark.parametrize(
        "accept_encoding, coding",
        [
            ("gzip, deflate, br", "br"),
            ("br, gzip", "br"),
            ("gzip", "gzip"),
            ("br", "br"),
            ("br;q=0, gzip", "gzip"),
            ("br;q=0.5, gzip", "gzip"),
            ("br;q=0.5, gzip;q=0.4", "br"),
            ("*", "br"),
            ("*;q=0.1, br;q=0", "gzip"),
            ("gzip;q=0, br;q=0", None),
            ("identity", None),
            ("identity;q=1, gzip;q=0.5", None),
            ("deflate", None),
            ("", None),
            (None, None),
            ("gzip;q=nonsense, br", "br"),
        ],
    )
    def test_the_best_acceptable_sibling_is_served(self, siblings, accept_encoding, coding):
        app = MediaHandler(siblings)
        headers = {} if accept_encoding is None else {"accept_encoding": accept_encoding}
        response = call(app, "/app.js", **headers)
        expected = {"br": b"BROTLI BYTES", "gzip": b"GZIP BYTES", None: (siblings / "app.js").read_bytes()}[coding]
        assert response.status_code == 200
        assert response.body == expected
        assert response.header("Content-Encoding") == coding
        assert response.header("Content-Type") in (
            "text/javascript; charset=utf-8",
            "application/javascript; charset=utf-8",
        )
        assert response.header("Content-Length") == str(len(expected))
        assert response.header("Vary") == "Accept-Encoding"

    def test_only_the_siblings_that_exist_are_offered(self, siblings):
        response = call(MediaHandler(siblings), "/style.css", accept_encoding="br, gzip")
        assert (response.header("Content-Encoding"), response.body) == ("gzip", b"GZ CSS")

    def test_each_representation_has_its_own_etag_and_304(self, siblings):
        app = MediaHandler(siblings)
        etags = {coding: call(app, "/app.js", accept_encoding=coding).header("ETag") for coding in ("br", "gzip", "x")}
        assert len(set(etags.values())) == 3
        response = call(app, "/app.js", accept_encoding="br", if_none_match=etags["br"])
        assert response.status_code == 304
        assert response.header("Vary") == "Accept-Encoding"
        assert call(app, "/app.js", accept_encoding="gzip", if_none_match=etags["br"]).status_code == 200

    def test_a_range_applies_to_the_compressed_bytes(self, siblings):
        response = call(MediaHandler(siblings), "/app.js", accept_encoding="gzip", range="bytes=0-3")
        assert (response.status_code, response.body) == (206, b"GZIP")
        assert response.header("Content-Range") == f"bytes 0-3/{len(b'GZIP BYTES')}"

    def test_the_gz_file_is_servable_by_its_own_name(self, siblings):
        response = call(MediaHandler(siblings), "/app.js.gz", accept_encoding="gzip")
        assert response.body == b"GZIP BYTES"
        assert response.header("Content-Type") == "application/gzip"
        assert response.header("Content-Encoding") is None

    def test_a_file_without_siblings_has_no_vary(self, app):
        assert call(app, "/hello.txt", accept_encoding="gzip, br").header("Vary") is None


class TestCachePolicy:
    def test_no_cache_control_by_default(self, app):
        assert call(app, "/hello.txt").header("Cache-Control") is None

    def test_cache_control_on_200_304_and_206(self, root):
        app = MediaHandler(root, cache_control="no-cache")
        response = call(app, "/hello.txt")
        assert response.header("Cache-Control") == "no-cache"
        assert call(app, "/hello.txt", if_none_match=response.header("ETag")).header("Cache-Control") == "no-cache"
        assert call(app, "/hello.txt", range="bytes=0-1").header("Cache-Control") == "no-cache"

    def test_immutable_names(self, root):
        (root / "base.27e20196a850.css").write_text("body {}")
        app = MediaHandler(root, cache_control="max-age=60, public", immutable=hashed_name)
        assert call(app, "/base.27e20196a850.css").header("Cache-Control") == IMMUTABLE
        assert call(app, "/hello.txt").header("Cache-Control") == "max-age=60, public"

    @pytest.mark.parametrize(
        "name, hashed",
        [
            ("css/base.27e20196a850.css", True),
            ("admin/js/core.0123456789ab.js", True),
            ("css/base.css", False),
            ("css/base.27e20196a85.css", False),
            ("css/base.27E20196A850.css", False),
            ("27e20196a850.css", False),
        ],
    )
    def test_hashed_name(self, name, hashed):
        assert hashed_name(name) is hashed


def test_a_same_size_rewrite_with_its_mtime_put_back_is_served_fresh(app, root):
    path = root / "hello.txt"
    first = call(app, "/hello.txt")
    mtime_ns = path.stat().st_mtime_ns
    time.sleep(0.02)  # past the filesystem's timestamp tick, so ctime moves
    path.write_text("HELLO, world\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # as cp -p or rsync -t leave it
    second = call(app, "/hello.txt", if_none_match=first.header("ETag"))
    assert second.status_code == 200
    assert second.body == b"HELLO, world\n"
    assert second.header("ETag") != first.header("ETag")
    assert second.header("Last-Modified") == first.header("Last-Modified")


@pytest.mark.parametrize("size", [0, 1, MEMORY_BODY_SIZE, MEMORY_BODY_SIZE + 1])
def test_files_around_the_memory_limit_are_served_whole(app, root, size):
    data = os.urandom(size)
    (root / "sized.bin").write_bytes(data)
    response = call(app, "/sized.bin")
    assert response.body == data
    assert response.header("Content-Length") == str(size)


def test_byte_range_directly():
    assert byte_range("bytes=0-0", 10) == (0, 0)
    assert byte_range("bytes=-20", 10) == (0, 9)
    assert byte_range("bytes=10-", 10) is UNSATISFIABLE
    assert byte_range("bytes=0-1, 2-3", 10) is None


def test_preferred_encoding_directly():
    assert preferred_encoding("gzip, br", ("br", "gzip")) == "br"
    assert preferred_encoding("gzip, br", ("gzip",)) == "gzip"
    assert preferred_encoding("br;q=0", ("br",)) is None


def test_caches_keyed_by_what_clients_send_keep_no_long_keys(app):
    from devserver.media import CACHED_KEY_LENGTH, _codings, _safe_join

    before = (relative_path.cache_info().currsize, _safe_join.cache_info().currsize)
    for number in range(30):
        assert call(app, f"/{number}" + "x" * (1024 * 1024)).status_code == 404
    assert (relative_path.cache_info().currsize, _safe_join.cache_info().currsize) == before
    codings = _codings.cache_info().currsize
    assert preferred_encoding("gzip;q=0.5, " + "y" * 1000, ("br", "gzip")) == "gzip"
    assert _codings.cache_info().currsize == codings  # finding: 30 distinct 1 MiB paths kept about 180 MiB
    assert call(app, "/hello.txt").status_code == 200
    assert relative_path.cache_info().currsize >= 1 and len("/hello.txt") <= CACHED_KEY_LENGTH


class TestSymlinks:
    """Finding 10: a link out of the root (``media/evil -> /etc``) served /etc/passwd."""

    @pytest.fixture
    def linked(self, tmp_path, root):
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_text("not for the web\n")
        (outside / "style.css").write_text("body {}\n")
        allowed = tmp_path / "app-media"
        allowed.mkdir()
        (allowed / "logo.txt").write_text("an app's own media\n")
        (root / "evil").symlink_to("/etc")
        (root / "out").symlink_to(outside)
        (root / "secret-file.txt").symlink_to(outside / "secret.txt")
        (root / "app").symlink_to(allowed)
        (root / "inner.txt").symlink_to(root / "hello.txt")
        (root / "hello.txt.gz").symlink_to(outside / "style.css")  # a sibling leading out
        return MediaHandler(root, link_roots=[allowed])

    @pytest.mark.parametrize("path", ["/evil/passwd", "/evil/hostname", "/out/secret.txt", "/secret-file.txt"])
    def test_a_link_that_leads_out_is_404(self, linked, path):
        response = call(linked, path)
        assert response.status_code == 404 and response.body == b"Not Found\n"

    def test_links_into_the_root_or_a_link_root_are_followed(self, linked):
        assert call(linked, "/app/logo.txt").body == b"an app's own media\n"
        assert call(linked, "/inner.txt").body == b"hello, world\n"

    def test_a_sibling_that_leads_out_is_not_offered(self, linked):
        response = call(linked, "/hello.txt", Accept_Encoding="gzip")
        assert response.body == b"hello, world\n" and response.header("Content-Encoding") is None


def test_the_mounts_let_links_lead_into_installed_apps_and_named_folders(settings, tmp_path):
    from devserver.mounts import link_roots

    settings.RUNCHERRYPY_LINK_ROOTS = [tmp_path]
    roots = link_roots()
    assert str(tmp_path) in roots
    assert any(root.endswith(os.path.join("tests", "project")) for root in roots)
    assert any(root.endswith(os.path.join("django", "contrib", "admin")) for root in roots)
