"""What each piece of ``devserver/http/`` that replaces cheroot's code buys: instructions per request for a 5 KiB
file, its 304 and a small dynamic response ("hello"), with one piece at a time swapped for cheroot's own, against all
of them in place.

    python bench/overrides.py [--count 1000]

Run by hand from the project's folder, in its virtualenv, with valgrind from the distribution (its counts are the
same on every run, where wrk's req/s move by up to 40% on this shared machine). Each variant runs in a process of
its own: a ``MediaHandler`` on ``devserver.server.create_server`` (for "hello", a WSGI application that answers with
the body and the six headers Django's smallest view sends with its default middleware, without Django), with
requests a browser would send written into one end of a socketpair, and on the other the selector's part
(``devserver.http.receive.receive``: read and parse) and the worker's (the connection's ``communicate()``) called in
turn, on one thread: what is counted is the request's path and the handler, without the accept loop, the selector's
``select()`` and the worker queue, which the pieces do not touch. The parser has no cheroot counterpart in this flow
(cheroot read the head on the worker, line by line): ``bench/instructions.py`` compares whole servers. Each count
is that of ``--count`` requests less that of none (start-up and imports). The cost of each variant is printed
against "all". A piece whose removal costs less than 5% should be a narrow override rather than a copy of cheroot's
code.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

VARIANTS = {
    "all": "",
    "get_environ": """
from cheroot import wsgi
from devserver.http.file_wrapper import FileIterator
def get_environ(self):
    environ = wsgi.Gateway_10.get_environ(self)
    environ["wsgi.file_wrapper"] = FileIterator
    return environ
Gateway.get_environ = get_environ
""",
    "start_response": """
from cheroot import wsgi
Gateway.start_response = wsgi.Gateway_10.start_response
""",
    "header_block": """
import io
from cheroot import server as cheroot_server
class Collector:
    def write(self, data):
        self.data = data
def header_block(self):
    wfile, self.conn.wfile = self.conn.wfile, Collector()
    try:
        cheroot_server.HTTPRequest.send_headers(self)
        return self.conn.wfile.data
    finally:
        self.conn.wfile = wfile
response.header_block = header_block
from devserver.http import gateway, request as request_module
gateway.header_block = request_module.header_block = header_block
""",
    "one_send": """
from cheroot import wsgi
def write(self, chunk):
    wsgi.Gateway_10.write(self, chunk)
    self.body_bytes += len(chunk)
Gateway.write = write
""",
}

LOOP = """
import socket, sys
from devserver.http import response
from devserver.http.gateway import Gateway
from devserver.http.receive import receive
{patch}
from devserver.media import MediaHandler
from devserver.server import create_server

HELLO_HEADERS = [
    ("Content-Type", "text/plain"),
    ("X-Frame-Options", "DENY"),
    ("Content-Length", "14"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
]


def hello(environ, start_response):  # what Django's smallest view answers, with its default middleware
    start_response("200 OK", list(HELLO_HEADERS))
    return [b"Hello, world!\\n"]


app = hello if {hello!r} else MediaHandler({root!r}, cache_control="no-cache")
server = create_server(("127.0.0.1", 8000), app)
client, inner = socket.socketpair()
conn = server.ConnectionClass(server, inner)
request = {request!r}
for _ in range(int(sys.argv[1])):
    client.sendall(request)
    receive(server, conn)
    conn.communicate()
    client.recv(65536)
"""

BROWSER_REQUEST = (
    b"GET /five.css HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\nAccept-Language: en\r\nConnection: keep-alive\r\n"
)


HELLO = b"GET /hello/ "


def instructions(code, count):
    """Instructions executed by ``python -c code count`` (valgrind's cachegrind: the same count on every run)."""
    output = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
        + [sys.executable, "-c", code, str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stderr
    return int(re.search(r"I\s+refs:\s+([0-9,]+)", output)[1].replace(",", ""))


def per_request(variant, root, request, count):
    """Instructions per request through cheroot and the handler: ``count`` requests, less the same process doing
    none (start-up, imports)."""
    code = LOOP.format(patch=VARIANTS[variant], root=str(root), request=request, hello=request.startswith(HELLO))
    return (instructions(code, count) - instructions(code, 0)) / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="requests per run (default 1000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "five.css").write_bytes((b"body { margin: 0; }\n" * 300)[: 5 * 1024])
        from devserver.media import describe

        etag = describe(str(root / "five.css"), (root / "five.css").stat()).etag
        requests = (
            BROWSER_REQUEST + b"\r\n",
            BROWSER_REQUEST + f"If-None-Match: {etag}\r\n\r\n".encode(),
            BROWSER_REQUEST.replace(b"GET /five.css ", HELLO) + b"\r\n",
        )
        results = {
            variant: [per_request(variant, root, request, args.count) for request in requests] for variant in VARIANTS
        }
    base = results["all"]
    print("Instructions per request (valgrind); 'cost' against 'all' (1.05: with cheroot's own piece, 5% more).")
    print(f"{'cheroot own':15} " + " ".join(f"{name:>9} {'cost':>6}" for name in ("5 KiB", "304", "hello")))
    for variant, counts in results.items():
        print(f"{variant:15} " + " ".join(f"{n:9.0f} {n / b:6.3f}" for n, b in zip(counts, base, strict=True)))


if __name__ == "__main__":
    main()
