"""Behind a reverse proxy: the client's address, scheme and host from the headers a trusted proxy adds, and the
same headers removed when anyone else sends them.

``ForwardedHeaders`` wraps the whole application tree (Django and the file handlers), so that Django's
``request.META["REMOTE_ADDR"]``, ``request.is_secure()`` and ``build_absolute_uri()`` and the access log are right
without ``SECURE_PROXY_SSL_HEADER`` or ``USE_X_FORWARDED_HOST``; a client that is not a trusted proxy cannot pose as
one. The rules are gunicorn's ``forwarded_allow_ips`` and uvicorn's ``ProxyHeadersMiddleware``, with RFC 7239's
``Forwarded`` read too.
"""

import ipaddress
import re

__all__ = ["FORWARDED_KEYS", "ForwardedHeaders", "TrustedPeers", "trusted_peers"]

FORWARDED_KEYS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
)
"""The environ keys of the headers that only a trusted proxy may send."""

_FORWARDED_KEY_SET = frozenset(FORWARDED_KEYS)


class TrustedPeers:
    """A set of addresses and networks (``ipaddress`` objects), or every address (``everyone``). ``in`` takes an
    address as text; text that is not an address is never trusted (except with ``everyone``)."""

    CACHED = 1024
    """Answers kept, by address text (parsing one with ``ipaddress`` costs more than the rest of the check)."""

    def __init__(self, networks=(), everyone=False):
        self.networks = tuple(networks)
        self.everyone = everyone
        self._answers = {}

    def __contains__(self, address):
        if self.everyone:
            return True
        answer = self._answers.get(address)
        if answer is None:
            answer = self._trusted(address)
            if len(self._answers) >= self.CACHED:
                self._answers.clear()  # bounded: the peers' addresses, or a forwarded list's
            self._answers[address] = answer
        return answer

    def _trusted(self, address):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)

    def __str__(self):
        return "*" if self.everyone else ",".join(str(network) for network in self.networks)


def trusted_peers(value):
    """A converter for ``--forwarded-allow-ips``: comma-separated addresses and CIDR networks (``10.0.0.0/8``,
    ``::1``), or ``*`` for every peer; a list or tuple of them from a setting. ``ValueError`` names a bad entry."""
    if isinstance(value, str):
        entries = [entry.strip() for entry in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(entry, str) for entry in value):
        entries = [entry.strip() for entry in value]
    else:
        raise ValueError(f"expected addresses or networks separated by commas, got {value!r}")
    if entries == ["*"]:
        return TrustedPeers(everyone=True)
    networks = []
    for entry in entries:
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an address or a network: {entry!r}") from None
    return TrustedPeers(networks)


# RFC 7239 §4: forwarded-pair = token "=" value, value = token / quoted-string; pairs joined by ";", elements by
# ",". Unquoted values are taken with ":" "[" "]" too, as some proxies send them.
_PAIR = re.compile(
    r"""[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]+)[ \t]*([;,]|$)"""
)


def parse_forwarded(value):
    """RFC 7239 ``Forwarded``: a list of elements, one per proxy, each a dict of lower-case parameter names to
    values (quotes removed). ``None`` when the header does not parse (it is then ignored as a whole)."""
    elements, current, position = [], {}, 0
    while position < len(value):
        matched = _PAIR.match(value, position)
        if matched is None:
            return None
        name, text, separator = matched.groups()
        if text.startswith('"'):
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        current[name.lower()] = text
        position = matched.end()
        if separator != ";":
            elements.append(current)
            current = {}
    return elements or None


def node_address(node):
    """The address in an RFC 7239 node (``192.0.2.1``, ``"192.0.2.1:80"``, ``"[2001:db8::1]:80"``) or in an
    ``X-Forwarded-For`` entry, without its port; ``None`` for ``unknown``, an obfuscated name or anything else."""
    node = node.strip()
    if node.startswith("["):
        node = node[1 : node.find("]")] if "]" in node else ""
    elif node.count(":") == 1:
        node = node.partition(":")[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return None


def _last(value):
    return value.rpartition(",")[2].strip()


class ForwardedHeaders:
    """WSGI middleware: ``application`` behind proxies whose addresses are in ``trusted`` (a ``TrustedPeers``).

    From a trusted peer, and from any peer on a unix socket (``REMOTE_ADDR`` empty):

    - the client's address, from ``X-Forwarded-For``, read from the right: the nearest address that is not itself
      trusted, or the farthest one if all are, becomes ``REMOTE_ADDR`` (and ``REMOTE_PORT`` is emptied), when it
      is an address;
    - the scheme, from the last ``X-Forwarded-Proto``: ``wsgi.url_scheme`` (``http`` or ``https`` only), and
      ``HTTPS`` ``on``/``off``;
    - the host, from the last ``X-Forwarded-Host``: ``HTTP_HOST``; the last ``X-Forwarded-Port``: ``SERVER_PORT``;
    - when none of the ``X-Forwarded-*`` headers came, RFC 7239 ``Forwarded`` instead: ``for=`` read from the
      right in the same way, and ``proto=`` and ``host=`` of the element it stopped at. The ``X-Forwarded-*``
      headers come first because they are what nginx, Apache, Caddy and most balancers set, and they pass a
      client's own ``Forwarded`` on untouched.

    A proxy must set these headers itself rather than pass a client's on; Django's ALLOWED_HOSTS still applies
    to the host.

    From any other peer the five headers are removed (``FORWARDED_KEYS``), so that neither this middleware nor
    Django's own ``SECURE_PROXY_SSL_HEADER`` or ``USE_X_FORWARDED_HOST`` takes them from a client.
    """

    def __init__(self, application, trusted):
        self.application = application
        self.trusted = trusted

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR", "")
        if peer and peer not in self.trusted:
            for key in FORWARDED_KEYS:
                if key in environ:
                    del environ[key]
        elif not _FORWARDED_KEY_SET.isdisjoint(environ):
            self.apply(environ)
        return self.application(environ, start_response)

    def apply(self, environ):
        """Set the environ from the forwarding headers of a trusted peer."""
        x_forwarded = any(key in environ for key in FORWARDED_KEYS[1:])
        elements = None
        if not x_forwarded and "HTTP_FORWARDED" in environ:
            elements = parse_forwarded(environ["HTTP_FORWARDED"])
        if elements is not None:
            index = self._client_index([element.get("for", "") for element in elements])
            element = elements[index] if index is not None else {}
            client, proto, host, port = element.get("for"), element.get("proto"), element.get("host"), None
        else:
            hops = environ["HTTP_X_FORWARDED_FOR"].split(",") if "HTTP_X_FORWARDED_FOR" in environ else []
            index = self._client_index(hops)
            client = hops[index] if index is not None else None
            proto = _last(environ["HTTP_X_FORWARDED_PROTO"]) if "HTTP_X_FORWARDED_PROTO" in environ else None
            host = _last(environ["HTTP_X_FORWARDED_HOST"]) if "HTTP_X_FORWARDED_HOST" in environ else None
            port = _last(environ["HTTP_X_FORWARDED_PORT"]) if "HTTP_X_FORWARDED_PORT" in environ else None
        address = node_address(client) if client else None
        if address is not None:
            environ["REMOTE_ADDR"] = address
            environ["REMOTE_PORT"] = ""
        if proto is not None and proto.lower() in ("http", "https"):
            environ["wsgi.url_scheme"] = proto.lower()
            environ["HTTPS"] = "on" if proto.lower() == "https" else "off"
        if host:
            environ["HTTP_HOST"] = host
        if port and port.isdigit():
            environ["SERVER_PORT"] = port

    def _client_index(self, hops):
        """The index in ``hops`` (nearest last) of the client: the last one that is not trusted, or the first."""
        if not hops:
            return None
        for index in range(len(hops) - 1, -1, -1):
            address = node_address(hops[index])
            if address is None or address not in self.trusted:
                return index
        return 0
