"""Running servers: ``ServerGroup`` (several servers, one per listening socket, run as one) and ``ServingThread``
(a server bound and served in a thread of its own, for the command, the live servers of tests and the tests)."""

import threading

__all__ = ["ServerGroup", "ServingThread"]


class ServerGroup:
    """Several ``Server`` objects run as one, for a server that listens on more than one socket (a unix socket and
    a TCP address; the sockets systemd passed): ``prepare()``, ``serve()`` and ``stop()`` act on all (``serve()``
    returns once every one has stopped), each with its own pool of worker threads. ``shutdown_timeout`` and
    ``access_log`` are the first server's, and setting ``shutdown_timeout`` sets it on all; ``bind_error`` is the
    first one's error. ``servers``: the list, in order."""

    def __init__(self, servers):
        self.servers = list(servers)

    def __getattr__(self, name):  # bind_addr, requests, ready, ssl_adapter, ...: the first server's
        return getattr(self.servers[0], name)

    @property
    def shutdown_timeout(self):
        return self.servers[0].shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, value):
        for server in self.servers:
            server.shutdown_timeout = value

    @property
    def bind_error(self):
        return next((server.bind_error for server in self.servers if server.bind_error is not None), None)

    @property
    def streams_ended(self):
        return sum(server.streams_ended for server in self.servers)

    def settled(self):
        return all(server.settled() for server in self.servers)

    def threads_left(self):
        return any(server.threads_left() for server in self.servers)

    def prepare(self):
        prepared = []
        try:
            for server in self.servers:
                server.prepare()
                prepared.append(server)
        except BaseException:
            for server in prepared:
                server.stop()
            raise

    def serve(self):
        errors = []

        def serve(server):
            try:
                server.serve()
            except BaseException as error:  # noqa: BLE001 - raised again below
                errors.append(error)
                self.stop()

        threads = [threading.Thread(target=serve, args=(server,), name="cheroot-serve") for server in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def stop(self):
        threads = [threading.Thread(target=server.stop, name="cheroot-stop") for server in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


class ServingThread(threading.Thread):
    """A daemon thread that binds ``server`` (``prepare()``) and serves it until ``server.stop()``.

    ``start_serving()`` starts it and returns once the server is bound, raising what binding raised (a port in
    use: an ``OSError``, with the cause in ``server.bind_error``). ``error`` holds what ``serve()`` raised, if
    anything; ``stopped`` is set when it returns; ``on_exit(error)``, if given, is called then.
    """

    def __init__(self, server, *, on_exit=None, name="cheroot-serve"):
        super().__init__(name=name, daemon=True)
        self.server = server
        self.on_exit = on_exit
        self.error = None
        self.is_ready = threading.Event()
        self.stopped = threading.Event()

    def run(self):
        try:
            self.server.prepare()
        except BaseException as error:  # noqa: BLE001 - raised again by start_serving
            self.error = error
            self.is_ready.set()
            self.stopped.set()
            return
        self.is_ready.set()
        try:
            self.server.serve()
        except BaseException as error:  # noqa: BLE001 - handed to on_exit
            self.error = error
        finally:
            self.stopped.set()
            if self.on_exit is not None:
                self.on_exit(self.error)

    def start_serving(self):
        """Start the thread and wait until the server is bound; return the server."""
        self.start()
        self.is_ready.wait()
        if self.error is not None and self.stopped.is_set():
            raise self.error
        return self.server

    def terminate(self, timeout=None):
        """Stop the server (cheroot's ``stop()``: requests in flight get ``shutdown_timeout``) and join."""
        if self.server.ready:
            self.server.stop()
        self.join(timeout)
