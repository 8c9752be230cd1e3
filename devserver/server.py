"""The cheroot side of ``runcherrypy``: the WSGI application tree, the server, and a graceful stop on signals.

Nothing here reads Django settings; ``devserver.mounts`` decides what is mounted and the command wires it up.
"""

import logging
import signal
import threading
import time

from cheroot import wsgi

__all__ = ["Gateway", "Server", "build_application", "serve_until_signalled"]

access_logger = logging.getLogger("django.server")
"""One line per request, in runserver's format and through runserver's logger, so LOGGING settings apply."""

server_logger = logging.getLogger("devserver.server")
"""cheroot's own messages (``HTTPServer.error_log``)."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def build_application(django_app, mounts):
    """Return the WSGI application the server runs: ``django_app`` at the root, each mounted ``Mount`` at its
    prefix, through ``cheroot.wsgi.PathInfoDispatcher`` (longest prefix first; ``/staticfoo`` does not match
    ``/static``).
    """
    apps = [("", django_app)]
    apps.extend((mount.prefix, mount.app) for mount in mounts if mount.app is not None)
    return wsgi.PathInfoDispatcher(apps)


class Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, plus an access log line per response and a ``close()`` that always happens.

    cheroot's own ``respond()`` calls ``response.close()`` after ``ensure_headers_sent()`` in the same ``finally``:
    when the client has gone and the body is empty (204, a redirect), sending the headers raises first and
    ``close()`` is never called, so Django's ``request_finished`` does not fire and its database connection is not
    returned. Here ``close()`` runs in an inner ``finally``.
    """

    def __init__(self, req):
        super().__init__(req)
        self.body_bytes = 0

    def respond(self):
        response = self.req.server.wsgi_app(self.env, self.start_response)
        try:
            for chunk in response:
                if chunk:
                    if not isinstance(chunk, bytes):
                        raise ValueError("WSGI Applications must yield bytes")
                    self.write(chunk)
        finally:
            try:
                self.req.ensure_headers_sent()
            finally:
                try:
                    close = getattr(response, "close", None)
                    if close is not None:
                        close()
                finally:
                    self.log_access()

    def write(self, chunk):
        super().write(chunk)
        self.body_bytes += len(chunk)

    def log_access(self):
        """Log ``"GET /path HTTP/1.1" 200 1234`` through ``django.server``, as runserver does: 5xx as errors,
        4xx as warnings, the rest as info, with ``status_code`` for Django's ``ServerFormatter`` colours.
        """
        req = self.req
        status = req.status[:3]
        # No status means the application raised before start_response; cheroot answers that with a 500.
        code = int(status) if status.isdigit() else 500
        level = logging.ERROR if code >= 500 else logging.WARNING if code >= 400 else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        request_line = b" ".join((req.method or b"-", req.uri or b"-", req.request_protocol or b"-"))
        access_logger.log(
            level,
            '"%s" %s %s',
            request_line.decode("latin-1"),
            code,
            self.body_bytes,
            extra={"status_code": code, "server_time": time.strftime("%d/%b/%Y %H:%M:%S")},
        )


class Server(wsgi.Server):
    """``cheroot.wsgi.Server`` with the ``Gateway`` above, its messages sent to ``logging``, and the error that
    made binding fail kept in ``bind_error`` (cheroot folds it into a message string).

    Arguments are ``cheroot.wsgi.Server``'s.
    """

    def __init__(self, bind_addr, wsgi_app, **kwargs):
        super().__init__(bind_addr, wsgi_app, **kwargs)
        self.gateway = Gateway
        self.bind_error = None

    def bind(self, family, type, proto=0):
        try:
            return super().bind(family, type, proto)
        except OSError as error:
            self.bind_error = error
            raise

    def error_log(self, msg="", level=logging.INFO, traceback=False):
        server_logger.log(level, "%s", msg, exc_info=traceback)


REPEAT_SIGNAL_WINDOW = 0.5
"""Seconds within which a repeated stop signal counts as the same one: ``timeout``, shells and process
supervisors may deliver one signal to both the process and its group, which must not read as "give up"."""


def serve_until_signalled(server, *, grace=2.0, on_stopping=None):
    """Serve on a prepared ``server`` until SIGINT or SIGTERM, then stop it gracefully.

    Graceful: no new connections, idle keep-alive connections closed, requests in flight finish. cheroot's
    ``stop()`` waits ``shutdown_timeout`` seconds for them, then shuts their sockets for reading and joins without
    a bound; this waits at most ``grace`` seconds more. A second signal gives up at once.

    Calling ``stop()`` from a signal handler while ``serve()`` runs on the main thread deadlocks, so ``serve()``
    runs in a thread and the handler only sets an event that the main thread waits on. Must be called from the
    main thread (``signal.signal`` requires it). ``on_stopping(signum)`` is called when the first signal arrives.

    Returns ``True`` when every request finished, ``False`` when time ran out or a second signal came (threads are
    still running then: the caller should end the process with ``os._exit``). Re-raises what ``serve()`` raised.
    """
    stopping = threading.Event()  # a signal came, or serve() ended by itself
    stopped = threading.Event()  # server.stop() returned: every worker has finished
    done_waiting = threading.Event()  # stop() returned or a second signal came
    failure = []
    first_signal = []

    def on_signal(signum, frame):
        now = time.monotonic()
        if first_signal:
            if now - first_signal[0] > REPEAT_SIGNAL_WINDOW:
                done_waiting.set()
            return
        first_signal.append(now)
        stopping.set()
        if on_stopping is not None:
            on_stopping(signum)

    def serve():
        try:
            server.serve()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failure.append(exc)
        finally:
            stopping.set()

    def stop():
        try:
            server.stop()
            stopped.set()
        finally:
            done_waiting.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        threading.Thread(target=serve, name="cheroot-serve", daemon=True).start()
        stopping.wait()
        threading.Thread(target=stop, name="cheroot-stop", daemon=True).start()
        done_waiting.wait(server.shutdown_timeout + grace)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failure:
        raise failure[0]
    return stopped.is_set()
