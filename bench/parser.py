"""The request parser against llhttp (through ``httptools``, uvicorn's parser) behind the same interface: instructions
per request head under valgrind, for a browser's GET, the same with a query and percent-encoding, and a POST with a
small body; then how many of the parser tables' refusals (``tests/test_parser.py``, ``tests/test_strictness.py``)
each one also refuses.

    python bench/parser.py [--count 20000]

Run by hand from the project's folder, in its virtualenv (``httptools`` is a test dependency), with valgrind from
the distribution. Each count is that of ``--count`` parses less that of none (start-up and imports), in a process
of its own. For llhttp the count includes what the interface needs beyond llhttp's callbacks: the headers in a dict
and the title-cased names, the body in a buffer, the path split from the query.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.overrides import instructions  # noqa: E402  (valgrind's count of one run)

HEADS = {
    "browser GET": (
        b"GET /static/app/site.css HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
        b"Accept: text/css,*/*;q=0.1\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-GB,en;q=0.5\r\n"
        b"Connection: keep-alive\r\nReferer: http://127.0.0.1:8000/\r\nSec-Fetch-Dest: style\r\n\r\n"
    ),
    "GET, query": b"GET /search/caf%C3%A9?q=a%20b&page=2 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
    "POST, 20 B": (
        b"POST /api/items/ HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n"
        + b'{"name": "a", "n":1}'
    ),
}

OURS = """
import sys
from devserver.http.parser import Limits, Parser
limits = Limits(body_size=1 << 30)
data = {data!r}
for _ in range(int(sys.argv[1])):
    message = Parser(limits).feed(data)
"""

LLHTTP = """
import io, sys
import httptools

class Message:
    def __init__(self):
        self.headers = {{}}
        self.body = io.BytesIO()
        self.done = False
    def on_url(self, url):
        self.url = url
    def on_header(self, name, value):
        self.headers[name.title()] = value
    def on_body(self, body):
        self.body.write(body)
    def on_message_complete(self):
        self.done = True

data = {data!r}
for _ in range(int(sys.argv[1])):
    message = Message()
    parser = httptools.HttpRequestParser(message)
    parser.feed_data(data)
    path, _, query = message.url.partition(b"?")
    method, version = parser.get_method(), parser.get_http_version()
"""


def per_parse(template, data, count):
    code = template.format(data=data)
    return (instructions(code, count) - instructions(code, 0)) / count


def refusals():
    """How many of the refusal cases in the parser tables llhttp refuses too (it has no limits, so those are left
    out)."""
    import httptools

    sys.path.insert(0, str(ROOT))
    from tests import test_parser

    cases = [data for data, expected in _cases(test_parser) if expected in (400, 501, 505)]
    refused = 0
    for data in cases:
        try:
            httptools.HttpRequestParser(_Sink()).feed_data(data)
        except httptools.HttpParserError:
            refused += 1
    return refused, len(cases)


class _Sink:
    pass


def _cases(module):
    for mark in module.test_heads.pytestmark:
        if mark.name == "parametrize":
            yield from mark.args[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="parses per run (default 20000)")
    args = parser.parse_args()
    print(f"{'head':14} {'ours':>9} {'llhttp':>9} {'ratio':>6}   (instructions per parse, valgrind)")
    for name, data in HEADS.items():
        ours, theirs = per_parse(OURS, data, args.count), per_parse(LLHTTP, data, args.count)
        print(f"{name:14} {ours:9.0f} {theirs:9.0f} {ours / theirs:6.2f}")
    refused, total = refusals()
    print(f"llhttp refuses {refused} of the {total} heads the parser table refuses with 400, 501 or 505")


if __name__ == "__main__":
    main()
