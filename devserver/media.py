"""WSGI applications that serve files: a directory (``MediaHandler``) or Django's staticfiles finders
(``FinderHandler``).

Both take plain keyword arguments and never read ``django.conf.settings``; ``devserver.mounts`` reads the settings
and builds them.

A file is described once per stat result (``describe``): its headers and validators, and the body itself when it is
small, are computed when its identity (inode, size, mtime, ctime) first appears and reused while it stays the same,
so a request only stats the file, compares validators and sends.
"""

import mimetypes
import os
import re
import stat
import time
from functools import lru_cache
from hashlib import blake2b

from django.core.exceptions import SuspiciousFileOperation
from django.utils._os import safe_join
from django.utils.http import http_date, parse_etags, parse_http_date_safe

from .http.file_wrapper import BLOCK_SIZE, FileIterator

__all__ = [
    "BLOCK_SIZE",
    "IMMUTABLE",
    "MEMORY_BODY_SIZE",
    "FileHandler",
    "FileIterator",
    "FinderHandler",
    "MediaHandler",
    "Representation",
    "byte_range",
    "content_type",
    "describe",
    "hashed_name",
    "preferred_encoding",
]


MEMORY_BODY_SIZE = 16 * 1024
"""Files of at most this many bytes are held in memory with their description (at most ``_describe``'s cache
size of them: 16 MiB in all) and sent with their headers in one write."""

IMMUTABLE = "max-age=31536000, immutable"
"""Cache-Control for a name that carries its content's hash: it never changes (RFC 8246)."""

ALLOWED_METHODS = ("GET", "HEAD")

# Precompressed siblings, in order of preference at equal quality: name.br, then name.gz.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
SIBLING_RECHECK = 1.0
"""Seconds for which a file found without precompressed siblings is not looked at again."""

# A file served by its own name keeps its own type: ``x.css.gz`` is a gzip file, not CSS with a Content-Encoding
# (the same choice as django.http.FileResponse).
_ENCODED_TYPES = {"bzip2": "application/x-bzip", "gzip": "application/gzip", "xz": "application/x-xz"}
_TEXT_TYPES_WITHOUT_TEXT_PREFIX = frozenset({"application/javascript", "application/xml", "image/svg+xml"})

# ManifestStaticFilesStorage names a file ``name.<12 hex digits>.ext`` after its content.
_HASHED_NAME = re.compile(r"\.[0-9a-f]{12}\.[^./]+$")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _plain(status, body, extra=()):
    body = body.encode("ascii")
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    headers.extend(extra)
    return status, headers, body


# Error responses are constant: built once, never holding a path or a traceback.
_NOT_FOUND = _plain("404 Not Found", "Not Found\n")
_FORBIDDEN = _plain("403 Forbidden", "Forbidden\n")
_METHOD_NOT_ALLOWED = _plain("405 Method Not Allowed", "Method Not Allowed\n", [("Allow", ", ".join(ALLOWED_METHODS))])
_RANGE_NOT_SATISFIABLE = "416 Range Not Satisfiable"
_RANGE_NOT_SATISFIABLE_BODY = b"Range Not Satisfiable\n"

UNSATISFIABLE = "unsatisfiable"
"""What ``byte_range`` returns for a range that selects no byte of the representation."""


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


def hashed_name(relative):
    """Whether a relative path is named after its content's hash, as ManifestStaticFilesStorage names files
    (``css/base.27e20196a850.css``)."""
    return _HASHED_NAME.search(relative) is not None


def byte_range(header, size):
    """Read a ``Range`` field value for a representation of ``size`` bytes (RFC 9110 §14.2).

    Returns ``(first, last)``, byte positions counted from 0, both included, the last clamped to the end; or
    ``UNSATISFIABLE`` (416) when the range starts at or past the end, or asks for a suffix of 0 bytes; or ``None``
    when the field is to be ignored (200 with the whole representation): another unit, a syntax error, or several
    ranges, which RFC 9110 §14.2 lets a server answer with the whole representation.
    """
    unit, _, ranges = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in ranges:
        return None
    first, dash, last = ranges.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if first:
        if not _DIGITS.fullmatch(first) or (last and not _DIGITS.fullmatch(last)):
            return None
        start = int(first)
        if last and int(last) < start:  # "5-2" does not parse as a range
            return None
        if start >= size:
            return UNSATISFIABLE
        return start, min(int(last), size - 1) if last else size - 1
    if not _DIGITS.fullmatch(last):
        return None
    suffix = int(last)
    if suffix == 0 or size == 0:
        return UNSATISFIABLE
    return max(size - suffix, 0), size - 1


CACHED_KEY_LENGTH = 256
"""Caches keyed by what a client sends (a path, an Accept-Encoding value) keep only keys of at most this many
characters, so that their memory is bounded (4,096 paths of 256 characters: about 1 MiB) whatever clients send;
longer ones are computed each time."""


def _bounded_cache(maxsize):
    """``lru_cache(maxsize)`` for a function of one string, skipped for strings over ``CACHED_KEY_LENGTH``."""

    def decorate(function):
        cached = lru_cache(maxsize=maxsize)(function)

        def lookup(key, *rest):
            if len(key) > CACHED_KEY_LENGTH:
                return function(key, *rest)
            return cached(key, *rest)

        lookup.cache_info = cached.cache_info
        lookup.cache_clear = cached.cache_clear
        lookup.__doc__ = function.__doc__
        lookup.__name__ = function.__name__
        return lookup

    return decorate


@_bounded_cache(maxsize=128)
def _codings(accept_encoding):
    qualities = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding] = quality
    return qualities


def preferred_encoding(accept_encoding, available):
    """Choose a content coding for an ``Accept-Encoding`` field value (RFC 9110 §12.5.3).

    ``available``: codings of the precompressed siblings, most preferred first (``("br", "gzip")``). Returns the
    acceptable one with the highest quality (``q=0`` refuses; ``*`` stands for codings not named; the earlier in
    ``available`` wins a tie), or ``None`` for the identity, also when the client rates ``identity`` higher.
    """
    if not accept_encoding:
        return None
    qualities = _codings(accept_encoding)
    default = qualities.get("*", 0.0)
    best, best_quality = None, 0.0
    for coding in available:
        quality = qualities.get(coding, default)
        if quality > best_quality:
            best, best_quality = coding, quality
    if best is not None and qualities.get("identity", 0.0) > best_quality:
        return None
    return best


class Representation:
    """A file's selected representation as a response describes it, built once per stat result.

    ``identity``: ``(st_ino, st_size, st_mtime_ns, st_ctime_ns)``. ``size``: bytes; ``mtime``: whole seconds since
    the epoch (Last-Modified has one-second resolution); ``etag``: a strong entity tag, quoted, a digest of the
    identity; ``headers``: the 200 response's header list; ``validator_headers``: what a 304 repeats (RFC 9110
    §15.4.5); ``body``: the content when it is at most ``MEMORY_BODY_SIZE`` bytes and could be read, else ``None``.
    """

    __slots__ = (
        "body",
        "common_headers",
        "etag",
        "headers",
        "last_modified",
        "mtime",
        "path",
        "size",
        "validator_headers",
    )

    def __init__(self, path, identity, *, media_type, encoding=None, vary=False, cache_control=None, body=None):
        _, size, mtime_ns, _ = identity
        self.path = path
        self.size = size
        self.mtime = mtime_ns // 1_000_000_000
        self.last_modified = http_date(self.mtime)
        # All of the identity: a same-size rewrite whose mtime was put back (cp -p, rsync -t) changes ctime.
        self.etag = f'"{blake2b(repr(identity).encode(), digest_size=8).hexdigest()}"'
        self.body = body
        self.validator_headers = [("Last-Modified", self.last_modified), ("ETag", self.etag)]
        if cache_control:
            self.validator_headers.append(("Cache-Control", cache_control))
        if vary:
            self.validator_headers.append(("Vary", "Accept-Encoding"))
        # Everything but Content-Length and Content-Range.
        self.common_headers = [("Content-Type", media_type), ("Accept-Ranges", "bytes"), *self.validator_headers]
        if encoding:
            self.common_headers.append(("Content-Encoding", encoding))
        self.headers = [("Content-Length", str(size)), *self.common_headers]

    def partial_headers(self, first, last):
        """The 206 response's headers for bytes ``first`` to ``last`` (RFC 9110 §14.4, §15.3.7)."""
        return [
            ("Content-Length", str(last - first + 1)),
            ("Content-Range", f"bytes {first}-{last}/{self.size}"),
            *self.common_headers,
        ]

    def is_not_modified(self, environ):
        """Whether a GET or HEAD gets 304, by RFC 9110 §13.2.2.

        ``If-None-Match`` (a list, ``*``, ``W/`` tags, weak comparison per §8.8.3.2) takes precedence over
        ``If-Modified-Since``. A field that does not parse is ignored, as Django's ``get_conditional_response``
        does.
        """
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match:
            # Clients echo the ETag as sent: compare the string before parsing a list.
            if if_none_match == self.etag:
                return True
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

    def if_range_matches(self, if_range):
        """Whether an ``If-Range`` value still names this representation (RFC 9110 §13.1.5): an entity tag by
        strong comparison (a weak tag never matches), or a date equal to Last-Modified."""
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            return if_range == self.etag
        return parse_http_date_safe(if_range) == self.mtime


def _read_body(path, identity):
    """The content of ``path`` if it is still the file of that identity, else ``None``."""
    try:
        with open(path, "rb") as file:
            now = os.fstat(file.fileno())
            if (now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns) != identity:
                return None
            body = file.read(now.st_size + 1)
    except OSError:
        return None
    return body if len(body) == now.st_size else None


@lru_cache(maxsize=1024)
def _describe(path, identity, type_name, encoding, vary, cache_control):
    return Representation(
        path,
        identity,
        media_type=content_type(type_name),
        encoding=encoding,
        vary=vary,
        cache_control=cache_control,
        body=_read_body(path, identity) if identity[1] <= MEMORY_BODY_SIZE else None,
    )


def describe(path, st, *, type_name=None, encoding=None, vary=False, cache_control=None):
    """Return the ``Representation`` of the regular file at ``path`` whose ``os.stat`` result is ``st``.

    ``type_name``: the name whose type is the Content-Type (default: ``path``; for a precompressed sibling, the
    original's); ``encoding``: its Content-Encoding, for a precompressed sibling; ``vary``: whether the file has
    siblings, so responses carry ``Vary: Accept-Encoding``; ``cache_control``: the Cache-Control value, or ``None``.
    The result is cached while the file's identity (inode, size, mtime, ctime) and these arguments stay the same: a
    file replaced or rewritten, even within one mtime tick, gets a new description.
    """
    identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return _describe(path, identity, type_name or path, encoding, vary, cache_control)


@_bounded_cache(maxsize=4096)
def relative_path(path_info):
    """Turn a WSGI ``PATH_INFO`` into a relative filesystem path, or ``None`` if it must not be served.

    PEP 3333 hands PATH_INFO over as latin-1 text of the percent-decoded bytes; the bytes are decoded with the
    filesystem encoding, so a UTF-8 file name requested percent-encoded is found. ``None`` for a NUL byte, a
    ``..`` segment (whether it arrived plain or percent-encoded), a trailing slash or no name at all. Empty and
    ``.`` segments are dropped, so ``//etc/passwd`` means ``etc/passwd`` below the root. A pure function of its
    argument, so its answers are cached (for paths of at most ``CACHED_KEY_LENGTH`` characters).
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


@_bounded_cache(maxsize=4096)
def _safe_join(relative, root):
    # Django's safe_join is lexical (no filesystem access, and root is absolute): its answer can be kept.
    return safe_join(root, relative)


def _regular_stat(path):
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # missing, a bad name, a loop of links
        return None
    return st if stat.S_ISREG(st.st_mode) else None


class FileHandler:
    """Base of the file-serving WSGI applications: subclasses say where a relative path lies (``locate``).

    ``block_size``: bytes per block of a streamed body, default 65536; ``ValueError`` if < 1.
    ``cache_control``: the Cache-Control value of every file response, or ``None`` for none.
    ``immutable``: a predicate on the relative path (``hashed_name``, say); the files it accepts get
    ``IMMUTABLE`` instead.

    GET and HEAD only (405 with ``Allow`` otherwise). 200 with Content-Type, Content-Length, Last-Modified, a
    strong ETag and ``Accept-Ranges: bytes``; 304 for a conditional request that matches
    (``Representation.is_not_modified``); 206 or 416 for a ``Range`` (``byte_range``; ``If-Range`` decides
    between 206 and 200). ``name.br`` or ``name.gz`` beside ``name`` is served instead when ``Accept-Encoding``
    allows it, with ``Content-Encoding`` and its own ETag, and every response for ``name`` then says
    ``Vary: Accept-Encoding``; nothing is compressed on the fly. 404 for anything that is not a regular file,
    including ``..``, NUL bytes and directories; 403 for a file that cannot be read. Error bodies are short
    constant text.
    """

    def __init__(self, *, block_size=BLOCK_SIZE, cache_control=None, immutable=None):
        if block_size < 1:
            raise ValueError(f"block_size must be at least 1 byte, got {block_size!r}")
        self.block_size = block_size
        self.cache_control = cache_control
        self.immutable = immutable
        self._without_siblings = {}

    def locate(self, relative):
        """Return the absolute path of ``relative`` (a relative filesystem path), or ``None``.

        May raise ``SuspiciousFileOperation``, which means 404.
        """
        raise NotImplementedError

    def allowed(self, path):
        """Whether the existing file at ``path`` may be served (see ``MediaHandler``); here, always."""
        return True

    def find(self, path_info):
        """Return ``(relative, absolute)`` paths for a WSGI ``PATH_INFO``, or ``None``."""
        relative = relative_path(path_info)
        if relative is None:
            return None
        try:
            path = self.locate(relative)
        except SuspiciousFileOperation:
            return None
        return None if path is None else (relative, path)

    def siblings(self, path):
        """``{coding: (path, stat result)}`` of the precompressed siblings of ``path``.

        That a file has none is remembered for ``SIBLING_RECHECK`` seconds (most files have none, and looking costs
        two failed ``stat`` calls): a sibling created later is served within that time. Siblings that exist are
        stat'ed on every request, so a changed one is served fresh at once.
        """
        now = time.monotonic()
        if self._without_siblings.get(path, 0.0) > now:
            return {}
        siblings = {}
        for coding, suffix in ENCODINGS:
            sibling_st = _regular_stat(path + suffix)
            if sibling_st is not None and self.allowed(path + suffix):
                siblings[coding] = (path + suffix, sibling_st)
        if not siblings:
            if len(self._without_siblings) >= 4096:
                self._without_siblings.clear()
            self._without_siblings[path] = now + SIBLING_RECHECK
        return siblings

    def select(self, path, st, relative, environ):
        """The ``Representation`` to send for the file at ``path``: a precompressed sibling when the client
        accepts it (RFC 9110 §12.5.3), else the file itself."""
        siblings = self.siblings(path)
        cache_control = IMMUTABLE if self.immutable is not None and self.immutable(relative) else self.cache_control
        if not siblings:
            return describe(path, st, cache_control=cache_control)
        coding = preferred_encoding(environ.get("HTTP_ACCEPT_ENCODING"), siblings)
        if coding is None:
            return describe(path, st, vary=True, cache_control=cache_control)
        sibling, sibling_st = siblings[coding]
        return describe(sibling, sibling_st, type_name=path, encoding=coding, vary=True, cache_control=cache_control)

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method not in ALLOWED_METHODS:
            return _respond(start_response, _METHOD_NOT_ALLOWED)
        found = self.find(environ.get("PATH_INFO", ""))
        st = found and _regular_stat(found[1])
        if st is None or not self.allowed(found[1]):
            return _respond(start_response, _NOT_FOUND)
        relative, path = found
        representation = self.select(path, st, relative, environ)
        if representation.is_not_modified(environ):
            start_response("304 Not Modified", representation.validator_headers)
            return []

        first, last = 0, representation.size - 1
        status, headers = "200 OK", representation.headers
        range_header = environ.get("HTTP_RANGE")
        # Range is defined for GET only (RFC 9110 §14.2); a stale If-Range means the whole representation.
        if range_header and method == "GET":
            if_range = environ.get("HTTP_IF_RANGE")
            selected = byte_range(range_header, representation.size)
            if selected is not None and (if_range is None or representation.if_range_matches(if_range)):
                if selected is UNSATISFIABLE:
                    start_response(
                        _RANGE_NOT_SATISFIABLE,
                        [
                            ("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(_RANGE_NOT_SATISFIABLE_BODY))),
                            ("Content-Range", f"bytes */{representation.size}"),
                            *representation.validator_headers,
                        ],
                    )
                    return [_RANGE_NOT_SATISFIABLE_BODY]
                first, last = selected
                status, headers = "206 Partial Content", representation.partial_headers(first, last)

        if method == "HEAD":
            start_response(status, headers)
            return []
        body = representation.body
        if body is not None:
            start_response(status, headers)
            return [body if headers is representation.headers else body[first : last + 1]]
        try:
            file = open(representation.path, "rb")
        except PermissionError:
            return _respond(start_response, _FORBIDDEN)
        except OSError:  # removed between stat and open
            return _respond(start_response, _NOT_FOUND)
        if first:
            file.seek(first)
        start_response(status, headers)
        size = last - first + 1
        # Another server's wsgi.file_wrapper (gunicorn's sends with sendfile too) knows no length: whole files only.
        wrapper = environ.get("wsgi.file_wrapper")
        if wrapper is not None and wrapper is not FileIterator and size == representation.size:
            return wrapper(file, self.block_size)
        return FileIterator(file, self.block_size, size)


LINK_RECHECK = 1.0
"""Seconds for which ``MediaHandler`` trusts what it found of where a file's symlinks lead."""


class MediaHandler(FileHandler):
    """A WSGI application serving the regular files below ``root``, addressed by ``PATH_INFO``.

    ``root``: a directory (it may be created later). Symlinks inside it are followed only where they lead below
    ``root`` itself or below one of ``link_roots`` (folders: the sample links each app's media folder into MEDIA_ROOT
    this way, and ``collectstatic --link`` links into apps and STATICFILES_DIRS); a file anywhere else, such as
    ``media/evil -> /etc``, is a 404. Where a file leads is looked up once per ``LINK_RECHECK`` seconds. The other
    arguments and the responses: see ``FileHandler``.
    """

    def __init__(self, root, *, link_roots=(), **kwargs):
        super().__init__(**kwargs)
        self.root = os.path.abspath(root)
        self.link_roots = tuple(os.path.realpath(folder) for folder in link_roots)
        self._leads_inside = {}  # path -> (until, whether it lies below an allowed folder)

    def __repr__(self):
        return f"{type(self).__name__}({self.root!r})"

    def locate(self, relative):
        return _safe_join(relative, self.root)

    def allowed(self, path):
        """Whether the existing file ``path``, its symlinks followed, lies below ``root`` or a link root."""
        now = time.monotonic()
        known = self._leads_inside.get(path)
        if known is not None and known[0] > now:
            return known[1]
        real = os.path.realpath(path)
        inside = any(
            real.startswith(folder if folder.endswith(os.sep) else folder + os.sep)
            for folder in (os.path.realpath(self.root), *self.link_roots)
        )
        if len(self._leads_inside) >= 4096:
            self._leads_inside.clear()
        self._leads_inside[path] = (now + LINK_RECHECK, inside)
        return inside


class FinderHandler(FileHandler):
    """A WSGI application serving the files that a finder locates, addressed by ``PATH_INFO``.

    ``find``: a callable taking a relative URL path (``"admin/css/base.css"``) and returning an absolute path or
    ``None``, such as ``django.contrib.staticfiles.finders.find``; a ``SuspiciousFileOperation`` it raises means
    404. This is how ``runserver`` serves static files under DEBUG, without ``collectstatic``. The other arguments
    and the responses: see ``FileHandler``.
    """

    def __init__(self, find, **kwargs):
        super().__init__(**kwargs)
        self._find = find

    def __repr__(self):
        return f"{type(self).__name__}({self._find!r})"

    def locate(self, relative):
        return self._find(relative.replace(os.sep, "/")) or None


def _respond(start_response, response):
    status, headers, body = response
    start_response(status, headers)
    return [body]
