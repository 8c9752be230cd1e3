"""Behind a proxy (``devserver.proxy``): forwarding headers applied from trusted peers and removed from anyone
else; over plain WSGI calls, then through ``runcherrypy`` and Django."""

import json

import pytest

from devserver.proxy import ForwardedHeaders, parse_forwarded, trusted_peers

from .http import fetch


def seen(environ, trusted="127.0.0.1,::1"):
    """The environ the application gets, after ``ForwardedHeaders`` with ``trusted``."""
    result = {}

    def app(environ, start_response):
        result.update(environ)
        return []

    base = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5000", "wsgi.url_scheme": "http", "HTTP_HOST": "inner"}
    ForwardedHeaders(app, trusted_peers(trusted))({**base, **environ}, None)
    return result


def test_trusted_peers():
    peers = trusted_peers("10.0.0.0/8, ::1,192.0.2.7")
    assert "10.1.2.3" in peers and "::1" in peers and "192.0.2.7" in peers
    assert "192.0.2.8" not in peers and "unknown" not in peers and "" not in peers
    assert "::ffff:10.0.0.1" in peers  # an IPv4 peer on a dual-stack socket
    assert "203.0.113.9" in trusted_peers("*")
    assert "127.0.0.1" not in trusted_peers("")
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        trusted_peers("10.0.0.1,10.0.0.300")
    # Answers are kept, in bounded number, and stay right.
    for number in range(3 * peers.CACHED):
        assert (f"10.0.{number // 256}.{number % 256}" in peers) and f"11.0.0.{number % 256}" not in peers
    assert len(peers._answers) <= peers.CACHED


def test_from_an_untrusted_peer_the_headers_are_removed():
    environ = seen(
        {
            "REMOTE_ADDR": "203.0.113.9",
            "HTTP_X_FORWARDED_FOR": "198.51.100.1",
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_X_FORWARDED_HOST": "evil",
            "HTTP_X_FORWARDED_PORT": "443",
            "HTTP_FORWARDED": "for=198.51.100.1;proto=https",
        }
    )
    assert environ["REMOTE_ADDR"] == "203.0.113.9" and environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_HOST"] == "inner" and not [key for key in environ if "FORWARDED" in key]


def test_x_forwarded_from_a_trusted_proxy():
    environ = seen(
        {
            # The client wrote the first entry itself; the proxy appended the address it saw.
            "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.1",
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_X_FORWARDED_HOST": "example.com",
            "HTTP_X_FORWARDED_PORT": "8443",
        }
    )
    assert environ["REMOTE_ADDR"] == "198.51.100.1" and environ["REMOTE_PORT"] == ""
    assert environ["wsgi.url_scheme"] == "https" and environ["HTTPS"] == "on"
    assert environ["HTTP_HOST"] == "example.com" and environ["SERVER_PORT"] == "8443"
    # A chain of trusted proxies is walked through; all trusted: the farthest.
    chain = {"HTTP_X_FORWARDED_FOR": "198.51.100.1, 10.0.0.2, 10.0.0.3"}
    assert seen(chain, trusted="127.0.0.1,10.0.0.0/8")["REMOTE_ADDR"] == "198.51.100.1"
    assert seen({"HTTP_X_FORWARDED_FOR": "10.0.0.2"}, trusted="127.0.0.1,10.0.0.0/8")["REMOTE_ADDR"] == "10.0.0.2"
    # Nonsense is not taken.
    environ = seen({"HTTP_X_FORWARDED_FOR": "not-an-address", "HTTP_X_FORWARDED_PROTO": "gopher"})
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["wsgi.url_scheme"] == "http"


def test_rfc_7239_forwarded():
    assert parse_forwarded('for="[2001:db8::1]:4711";proto=https;by=x, for=192.0.2.60') == [
        {"for": "[2001:db8::1]:4711", "proto": "https", "by": "x"},
        {"for": "192.0.2.60"},
    ]
    assert parse_forwarded("for=a;;") is None and parse_forwarded('for="unclosed') is None
    environ = seen({"HTTP_FORWARDED": 'for=198.51.100.1, for="[2001:db8::1]:4711";proto=https;host=example.com'})
    assert environ["REMOTE_ADDR"] == "2001:db8::1"
    assert environ["wsgi.url_scheme"] == "https" and environ["HTTP_HOST"] == "example.com"
    # X-Forwarded-* come first: nginx sets them and passes a client's own Forwarded on untouched.
    both = {"HTTP_FORWARDED": "for=192.0.2.60;proto=https", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert seen(both)["REMOTE_ADDR"] == "198.51.100.1" and seen(both)["wsgi.url_scheme"] == "http"
    assert seen({"HTTP_FORWARDED": "for=", "HTTP_X_FORWARDED_PROTO": "https"})["REMOTE_ADDR"] == "127.0.0.1"
    assert seen({"HTTP_FORWARDED": "for=unknown"})["REMOTE_ADDR"] == "127.0.0.1"


def test_every_peer_on_a_unix_socket_is_trusted():
    environ = seen({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}, trusted="10.0.0.1")
    assert environ["REMOTE_ADDR"] == "198.51.100.1"


FORWARDED = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "localhost"}


def test_django_sees_the_client_behind_a_trusted_proxy(server):
    status, _, body = fetch(server.url, "/test/client/", headers=FORWARDED)
    assert status == 200
    assert json.loads(body) == {
        "remote_addr": "198.51.100.1",
        "is_secure": True,
        "absolute_uri": "https://localhost/x/",
        "forwarded": ["HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO"],
    }
    # And the access log names it.
    assert server.wait_for('198.51.100.1 "GET /test/client/ HTTP/1.1" 200')


def test_a_client_that_is_not_a_trusted_proxy_cannot_pose_as_one(start_server):
    running = start_server("127.0.0.1:0", "--noreload", "--forwarded-allow-ips", "10.0.0.0/8")
    status, _, body = fetch(running.url, "/test/client/", headers=FORWARDED)
    assert status == 200
    assert json.loads(body) == {
        "remote_addr": "127.0.0.1",
        "is_secure": False,
        "absolute_uri": f"http://127.0.0.1:{running.port}/x/",
        "forwarded": [],
    }
