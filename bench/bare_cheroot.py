"""Bare cheroot serving the project's WSGI application, for bench/dynamic.py: ``cheroot.wsgi.Server`` with its
defaults and ``numthreads``, nothing of runcherrypy. ``python bench/bare_cheroot.py PORT THREADS``; SIGTERM stops it."""

import signal
import sys
import threading

from cheroot import wsgi
from django.core.wsgi import get_wsgi_application

server = wsgi.Server(("127.0.0.1", int(sys.argv[1])), get_wsgi_application(), numthreads=int(sys.argv[2]))
server.prepare()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
threading.Thread(target=server.serve, daemon=True).start()
while not stop.wait(1):  # a timeout, so the main thread wakes to run the handler wherever the signal lands (valgrind)
    pass
server.stop()
