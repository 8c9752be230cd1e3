"""Open streams (``devserver.streams``): a stop ends them at once, cleanly, while requests in flight still finish;
a HEAD does not run them; past the thread ceiling a waiting request gets a 503. Real HTTP on loopback, against a
server in a thread of the test process."""

import logging
import os
import socket
import ssl
import threading
import time

import pytest
import trustme

from devserver.http.tls import TLSAdapter
from devserver.lifecycle import Outcome, stop_gracefully
from devserver.media import FileIterator
from devserver.streams import is_stream

from .http import Stream, fetch
from .waiting import eventually
from .wsgi import serving


class Streams:
    """A WSGI application: ``/events`` streams an event every 0.1 s; ``/poll`` waits for ``release`` (a long
    poll) and then yields twice; ``/flood`` yields 64 KiB blocks as fast as they go; ``/slow`` sleeps 1 s and
    answers 200. ``yielded`` counts the chunks each stream's iterator gave, ``closed`` the bodies closed."""

    def __init__(self):
        self.release = threading.Event()
        self.yielded = []
        self.closed = []
        self.started = threading.Event()

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/slow":
            self.started.set()
            time.sleep(1)
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
            return [b"slept"]
        content_type = "text/event-stream" if path == "/events" else "application/octet-stream"
        start_response("200 OK", [("Content-Type", content_type)])
        return getattr(self, path[1:])()

    def _counted(self, chunks):
        """A body as Django's ``StreamingHttpResponse`` is one: iterable, ``streaming``, with a ``close()``."""
        app, index = self, len(self.yielded)
        self.yielded.append(0)

        class Body:
            streaming = True

            def __iter__(self):
                for chunk in chunks:
                    app.yielded[index] += 1
                    yield chunk

            def close(self):
                app.closed.append(index)

        return Body()

    def events(self):
        def chunks():
            number = 0
            while True:
                number += 1
                yield b"data: %d\n\n" % number
                time.sleep(0.1)

        return self._counted(chunks())

    def poll(self):
        def chunks():
            self.release.wait(30)
            yield b'{"happened": true}'
            yield b""

        return self._counted(chunks())

    def flood(self):
        return self._counted(iter(lambda: b"x" * 65536, None))

    def slow_export(self):
        def rows():
            for number in range(1000):
                yield b"row %d\n" % number
                time.sleep(0.05)

        return self._counted(rows())


@pytest.fixture
def app():
    application = Streams()
    yield application
    application.release.set()  # no worker thread left waiting in the test process


def timed_stop(server):
    started = time.monotonic()
    outcome = stop_gracefully(server)
    return outcome, time.monotonic() - started


def test_what_is_a_stream():
    from django.http import FileResponse, HttpResponse, StreamingHttpResponse

    assert is_stream(StreamingHttpResponse(iter([b"a"])))
    assert is_stream(x for x in [b"a"])
    assert not is_stream(HttpResponse(b"a"))
    assert not is_stream([b"a"])
    # A file ends by itself: Django hands a FileResponse's file to wsgi.file_wrapper.
    with open(__file__, "rb") as file:
        assert not is_stream(FileIterator(file))
    assert is_stream(FileResponse(iter([b"a"])))  # an iterator given to FileResponse stays one


def test_a_stop_ends_an_event_stream_at_once_with_its_last_chunk(app):
    with serving(app, shutdown_timeout=30) as server:
        stream = Stream(server.bind_addr[1], "/events")
        eventually(lambda: b"data: 2" in stream.data)
        outcome, seconds = timed_stop(server)
        assert outcome is Outcome.STOPPED
        assert seconds < 5  # far from the 30 s that a request in flight would get
        assert stream.ended.wait(5) and stream.ended_cleanly, stream.data[-200:]
        assert server.streams_ended == 1
        # The worker stops at the iterator's next chunk, and closes it (Django's request_finished).
        eventually(lambda: app.closed == [0])
        stream.close()


def test_a_long_poll_is_answered_503_at_a_stop_and_its_iterator_is_not_read_again(app):
    with serving(app, shutdown_timeout=30) as server:
        stream = Stream(server.bind_addr[1], "/poll")
        eventually(lambda: app.yielded == [0] and len(server.streams) == 1)
        outcome, seconds = timed_stop(server)
        assert outcome is Outcome.STOPPED and seconds < 5
        assert stream.ended.wait(5) and stream.error is None
        # Nothing of it was sent: the client is told to retry (its poll, or its download, is not an empty 200).
        assert stream.head.startswith(b"HTTP/1.1 503 Service Unavailable")
        assert b"\r\nRetry-After: 1" in stream.head and b"\r\nConnection: close" in stream.head
        app.release.set()  # the poll's event comes: its first chunk is taken, not sent, and no other is asked for
        eventually(lambda: app.closed == [0])
        assert app.yielded == [1] and stream.body.startswith(b"The server is stopping")
        stream.close()


def test_a_stream_that_is_not_an_event_stream_is_cut_short_without_its_last_chunk(app):
    # A CSV export written as a StreamingHttpResponse: ended at a stop, its client must not take the short body for
    # a whole one.
    with serving(app, shutdown_timeout=30) as server:
        stream = Stream(server.bind_addr[1], "/slow_export")
        eventually(lambda: stream.body.count(b"row") >= 2)
        assert timed_stop(server)[0] is Outcome.STOPPED
        assert stream.ended.wait(5) and stream.head.startswith(b"HTTP/1.1 200 OK")
        assert b"chunked" in stream.head.lower() and not stream.body.endswith(b"0\r\n\r\n")
        assert not stream.ended_cleanly
        stream.close()


def test_a_stream_opened_once_the_stop_has_begun_is_ended_without_being_read(app):
    with serving(app, shutdown_timeout=30) as server:
        port = server.bind_addr[1]
        server.streams.end_all()  # as stop() begins with
        stream = Stream(port, "/events")
        assert stream.ended.wait(5) and stream.ended_cleanly and stream.body == b"0\r\n\r\n"
        eventually(lambda: app.closed == [0])
        assert app.yielded == [0] and server.streams_ended == 1
        stream.close()


def lazy_stream_app(environ, start_response):
    """A generator that calls start_response on its first iteration, as PEP 3333 allows."""
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    while True:
        yield b"data: 1\n\n"
        time.sleep(0.1)


def test_a_head_request_for_a_stream_that_starts_lazily_gets_its_headers():
    with serving(lazy_stream_app) as server:
        status, headers, body = fetch(server.bind_addr[1], "/", method="HEAD", timeout=5)
        assert (status, headers["Content-Type"], body) == (200, "text/event-stream", b"")


@pytest.mark.slow
def test_starting_and_stopping_a_server_leaks_no_descriptor(app):
    def descriptors():
        return len(os.listdir("/proc/self/fd"))

    with serving(app):
        pass
    before = descriptors()
    for _ in range(10):
        with serving(app) as server:
            assert fetch(server.bind_addr[1], "/slow")[0] == 200
    assert descriptors() <= before


@pytest.mark.slow
def test_a_request_in_flight_finishes_while_a_stream_is_ended(app):
    with serving(app, shutdown_timeout=30) as server:
        port = server.bind_addr[1]
        stream = Stream(port, "/events")
        result = {}
        client = threading.Thread(target=lambda: result.update(response=fetch(port, "/slow")))
        client.start()
        assert app.started.wait(5)
        eventually(lambda: b"data: 1" in stream.data)
        stopping = threading.Thread(target=lambda: result.update(outcome=stop_gracefully(server)))
        stopping.start()
        assert stream.ended.wait(0.8)  # before the slow request has finished
        assert client.is_alive() and stream.ended_cleanly
        client.join(5)
        stopping.join(5)
        status, headers, body = result["response"]
        assert (status, body, headers["Connection"]) == (200, b"slept", "close")
        assert result["outcome"] is Outcome.STOPPED
        stream.close()


def test_a_stream_to_an_http10_client_ends_with_the_connection(app):
    with serving(app, shutdown_timeout=30) as server:
        stream = Stream(server.bind_addr[1], "/events", http10=True)
        eventually(lambda: b"data: 1" in stream.data)
        assert timed_stop(server)[0] is Outcome.STOPPED
        assert stream.ended.wait(5) and stream.ended_cleanly
        assert b"chunked" not in stream.head.lower() and stream.body.startswith(b"data: 1\n\n")
        stream.close()


def test_a_head_request_does_not_run_a_stream(app):
    with serving(app) as server:
        status, headers, body = fetch(server.bind_addr[1], "/events", method="HEAD", timeout=5)
        assert (status, headers["Content-Type"], body) == (200, "text/event-stream", b"")
        eventually(lambda: app.closed == [0])
        assert app.yielded == [0]


def test_a_stream_to_a_client_that_does_not_read_is_cut_at_a_stop(app):
    with serving(app, shutdown_timeout=30) as server:
        client = socket.create_connection(("127.0.0.1", server.bind_addr[1]))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(b"GET /flood HTTP/1.1\r\nHost: localhost\r\n\r\n")
        # The server's writes fill the socket's buffers, and its worker waits in a write.
        eventually(lambda: app.yielded and app.yielded[0] > 2 and len(server.streams) == 1)
        outcome, seconds = timed_stop(server)
        assert outcome is Outcome.STOPPED and seconds < 5
        eventually(lambda: app.closed == [0])  # the write failed on the shut connection
        client.close()


@pytest.mark.slow
def test_past_the_thread_ceiling_a_request_that_waits_too_long_gets_503(app, caplog):
    caplog.set_level(logging.WARNING, logger="django.server")
    with serving(app, numthreads=2, max=2, header_timeout=0.5, shutdown_timeout=30) as server:
        port = server.bind_addr[1]
        streams = [Stream(port, "/events") for _ in range(2)]
        eventually(lambda: len(server.streams) == 2)
        status, headers, body = fetch(port, "/slow", timeout=10)
        assert (status, headers["Retry-After"], headers["Connection"]) == (503, "1", "close")
        assert b"busy" in body
        assert "All 2 worker threads are busy (2 of them held by open streams" in caplog.text
        streams[0].close()  # a thread comes free: requests are served again
        eventually(lambda: len(server.streams) == 1)
        assert fetch(port, "/slow", timeout=10)[0] == 200
        streams[1].close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    authority = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    issued = authority.issue_cert("localhost", "127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    issued.private_key_pem.write_to_path(folder / "key.pem")
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return TLSAdapter(str(folder / "cert.pem"), str(folder / "key.pem")), context


@pytest.mark.slow
def test_a_tls_client_leaving_a_stream_is_a_closed_connection_not_a_traceback(app, tls, caplog):
    adapter, context = tls
    caplog.set_level(logging.DEBUG)
    with serving(app, ssl_adapter=adapter) as server:
        stream = Stream(server.bind_addr[1], "/events", tls=context)
        eventually(lambda: b"data: 2" in stream.data)
        stream.socket.close()  # as a browser leaving the page does: no close_notify
        eventually(lambda: app.closed == [0])
        assert fetch(server.bind_addr[1], "/slow", tls=context)[0] == 200  # still serving
    assert not [record for record in caplog.records if record.exc_info], caplog.text
    assert "Traceback" not in caplog.text and "SSL" not in caplog.text
