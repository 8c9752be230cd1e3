"""WSGI applications that serve files: a directory (``MediaHandler``) or Django's staticfiles finders
(``FinderHandler``).

Both take plain keyword arguments and never read ``django.conf.settings``; ``devserver.mounts`` reads the settings
and builds them.

A file is described once per stat result (``describe``): its headers and validators are computed when its identity
(inode, size, mtime, ctime) first appears and reused while it stays the same, so a request only stats the file,
compares validators and opens it.
"""

import mimetypes
import os
import stat
from functools import lru_cache

from django.core.exceptions import SuspiciousFileOperation
from django.utils._os import safe_join
from django.utils.http import http_date, parse_etags, parse_http_date_safe

__all__ = ["BLOCK_SIZE", "FileHandler", "FileIterator", "FinderHandler", "MediaHandler", "Representation", "describe"]

BLOCK_SIZE = 64 * 1024
"""Default bytes per block of a streamed body."""

ALLOWED_METHODS = ("GET", "HEAD")

# A file served by its own name keeps its own type: ``x.css.gz`` is a gzip file, not CSS with a Content-Encoding
# (the same choice as django.http.FileResponse).
_ENCODED_TYPES = {"bzip2": "application/x-bzip", "gzip": "application/gzip", "xz": "application/x-xz"}
_TEXT_TYPES_WITHOUT_TEXT_PREFIX = frozenset({"application/javascript", "application/xml", "image/svg+xml"})


def _plain(status, body, extra=()):
    body = body.encode("ascii")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    return status, headers, body


# Error responses are constant: built once, never holding a path or a traceback.
_NOT_FOUND = _plain("404 Not Found", "Not Found\n")
_FORBIDDEN = _plain("403 Forbidden", "Forbidden\n")
_METHOD_NOT_ALLOWED = _plain("405 Method Not Allowed", "Method Not Allowed\n", [("Allow", ", ".join(ALLOWED_METHODS))])


def content_type(path):
    """Return the Content-Type for ``path`` from ``mimetypes``.

    Text types get ``; charset=utf-8``; a compressed file named ``x.css.gz`` is ``application/gzip``; an unknown
    type is ``application/octet-stream``.
    """
    guessed, encoding = mimetypes.guess_type(path)
    if encoding:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in _TEXT_TYPES_WITHOUT_TEXT_PREFIX:
        return guessed + "; charset=utf-8"
    return guessed


class Representation:
    """What a file's response says about it, built once per stat result.

    ``size``: bytes; ``mtime``: whole seconds since the epoch (Last-Modified has one-second resolution);
    ``etag``: a strong entity tag, quoted, from mtime in nanoseconds and size; ``headers``: the 200 response's
    header list; ``validator_headers``: what a 304 repeats (RFC 9110 §15.4.5).
    """

    __slots__ = ("etag", "headers", "last_modified", "mtime", "path", "size", "validator_headers")

    def __init__(self, path, size, mtime_ns):
        self.path = path
        self.size = size
        self.mtime = mtime_ns // 1_000_000_000
        self.last_modified = http_date(self.mtime)
        self.etag = f'"{mtime_ns:x}-{size:x}"'
        self.validator_headers = [("Last-Modified", self.last_modified), ("ETag", self.etag)]
        self.headers = [
            ("Content-Type", content_type(path)),
            ("Content-Length", str(size)),
            *self.validator_headers,
        ]

    def is_not_modified(self, environ):
        """Whether a GET or HEAD gets 304, by RFC 9110 §13.2.2.

        ``If-None-Match`` (a list, ``*``, ``W/`` tags, weak comparison per §8.8.3.2) takes precedence over
        ``If-Modified-Since``. A field that does not parse is ignored, as Django's ``get_conditional_response``
        does.
        """
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match:
            etags = parse_etags(if_none_match)
            if etags:
                if etags == ["*"]:
                    return True
                own = self.etag
                return any(tag == own or tag.removeprefix("W/") == own for tag in etags)
        if_modified_since = environ.get("HTTP_IF_MODIFIED_SINCE")
        if if_modified_since:
            # Clients echo Last-Modified as sent: compare the string before paying for a date parse.
            if if_modified_since == self.last_modified:
                return True
            since = parse_http_date_safe(if_modified_since)
            return since is not None and self.mtime <= since
        return False


@lru_cache(maxsize=4096)
def _describe(path, ino, size, mtime_ns, ctime_ns):
    # ino and ctime_ns are part of the key only: a file replaced or rewritten within one mtime tick gets a new
    # description (and a new size or mtime_ns, hence a new ETag, in every case a client can tell apart).
    return Representation(path, size, mtime_ns)


def describe(path, st):
    """Return the ``Representation`` of the regular file at ``path`` whose ``os.stat`` result is ``st``."""
    return _describe(path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileIterator:
    """A WSGI response body: at most ``size`` bytes of ``file`` in blocks of ``block_size`` bytes.

    ``close()`` closes the file; the server calls it at the end of the response and when the client disconnects
    (PEP 3333), so no descriptor outlives the request. Memory stays at one block whatever the file's size.
    """

    __slots__ = ("block_size", "file", "remaining")

    def __init__(self, file, size, block_size=BLOCK_SIZE):
        self.file = file
        self.remaining = size
        self.block_size = block_size

    def __iter__(self):
        return self

    def __next__(self):
        if self.remaining <= 0:
            raise StopIteration
        block = self.file.read(min(self.block_size, self.remaining))
        if not block:
            # The file shrank after it was described: stop short; the client sees fewer bytes than
            # Content-Length and knows the body is incomplete.
            raise StopIteration
        self.remaining -= len(block)
        return block

    def close(self):
        self.file.close()


def relative_path(path_info):
    """Turn a WSGI ``PATH_INFO`` into a relative filesystem path, or ``None`` if it must not be served.

    PEP 3333 hands PATH_INFO over as latin-1 text of the percent-decoded bytes; the bytes are decoded with the
    filesystem encoding, so a UTF-8 file name requested percent-encoded is found. ``None`` for a NUL byte, a
    ``..`` segment (whether it arrived plain or percent-encoded), a trailing slash or no name at all. Empty and ``.`` segments are
    dropped, so ``//etc/passwd`` means ``etc/passwd`` below the root.
    """
    try:
        path = os.fsdecode(path_info.encode("latin-1"))
    except UnicodeEncodeError:  # already text, from a server that decodes for us
        path = path_info
    if "\x00" in path or path.endswith("/"):  # a trailing slash names a directory
        return None
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if not segments or ".." in segments:
        return None
    return os.path.join(*segments)


class FileHandler:
    """Base of the file-serving WSGI applications: subclasses say where a relative path lies (``locate``).

    ``block_size``: bytes per block of a streamed body, default 65536; ``ValueError`` if < 1.

    GET and HEAD only (405 with ``Allow`` otherwise). 200 with Content-Type, Content-Length, Last-Modified and a
    strong ETag; 304 for a conditional request that matches (see ``Representation.is_not_modified``); 404 for
    anything that is not a regular file, including ``..``, NUL bytes and directories; 403 for a file that cannot
    be read. Error bodies are short constant text.
    """

    def __init__(self, *, block_size=BLOCK_SIZE):
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1 byte, got {block_size!r}")
        self.block_size = block_size

    def locate(self, relative):
        """Return the absolute path of ``relative`` (a relative filesystem path), or ``None``.

        May raise ``SuspiciousFileOperation``, which means 404.
        """
        raise NotImplementedError

    def find(self, path_info):
        """Return the absolute path that a WSGI ``PATH_INFO`` names, or ``None``."""
        relative = relative_path(path_info)
        if relative is None:
            return None
        try:
            return self.locate(relative)
        except SuspiciousFileOperation:
            return None

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method not in ALLOWED_METHODS:
            return _respond(start_response, _METHOD_NOT_ALLOWED)
        path = self.find(environ.get("PATH_INFO", ""))
        if path is None:
            return _respond(start_response, _NOT_FOUND)
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # missing, a bad name, a loop of links
            return _respond(start_response, _NOT_FOUND)
        if not stat.S_ISREG(st.st_mode):
            return _respond(start_response, _NOT_FOUND)
        representation = describe(path, st)
        if representation.is_not_modified(environ):
            start_response("304 Not Modified", representation.validator_headers)
            return []
        if method == "HEAD":
            start_response("200 OK", representation.headers)
            return []
        try:
            file = open(path, "rb")
        except PermissionError:
            return _respond(start_response, _FORBIDDEN)
        except OSError:  # removed between stat and open
            return _respond(start_response, _NOT_FOUND)
        start_response("200 OK", representation.headers)
        return FileIterator(file, representation.size, self.block_size)


class MediaHandler(FileHandler):
    """A WSGI application serving the regular files below ``root``, addressed by ``PATH_INFO``.

    ``root``: a directory (it may be created later); symlinks placed inside it are followed, which is how
    ``media/app`` links an app's own media folder in. ``block_size`` and the responses: see ``FileHandler``.
    """

    def __init__(self, root, *, block_size=BLOCK_SIZE):
        super().__init__(block_size=block_size)
        self.root = os.path.abspath(root)

    def __repr__(self):
        return f"{type(self).__name__}({self.root!r})"

    def locate(self, relative):
        return safe_join(self.root, relative)


class FinderHandler(FileHandler):
    """A WSGI application serving the files that a finder locates, addressed by ``PATH_INFO``.

    ``find``: a callable taking a relative URL path (``"admin/css/base.css"``) and returning an absolute path or
    ``None``, such as ``django.contrib.staticfiles.finders.find``; a ``SuspiciousFileOperation`` it raises means
    404. This is how ``runserver`` serves static files under DEBUG, without ``collectstatic``. ``block_size`` and
    the responses: see ``FileHandler``.
    """

    def __init__(self, find, *, block_size=BLOCK_SIZE):
        super().__init__(block_size=block_size)
        self._find = find

    def __repr__(self):
        return f"{type(self).__name__}({self._find!r})"

    def locate(self, relative):
        return self._find(relative.replace(os.sep, "/")) or None


def _respond(start_response, response):
    status, headers, body = response
    start_response(status, headers)
    return [body]
