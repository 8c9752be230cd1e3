"""Instructions per request of Django's smallest view (or the sample's page), server by server: runcherrypy, bare
cheroot, gunicorn (gthread) and waitress, each running the sample project with 10 threads in one process under
valgrind.

    python bench/instructions.py [--requests 100 600] [--path /hello/] [--servers ...]

Run by hand from the project's folder, in its virtualenv with bench/requirements.txt installed and valgrind from the
distribution. bench/dynamic.py's requests per second move by up to 40% from one run to the next on this shared
machine; the instructions a server executes for a request move by about 1%. Each server is run twice under
cachegrind (every process it starts included), answering the first and then the second count of requests for
``--path`` (``/hello/`` by default; ``/`` is the sample's page) from 10 keep-alive connections; the difference, over
the difference of the counts, is what one request costs, with start-up and the first requests' imports left out.
Every server answers on 127.0.0.1 only.
"""

import argparse
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import ROOT, THREADS, bench_project, free_port, gunicorn_command  # noqa: E402

CONNECTIONS = 10


def commands(port):
    python = sys.executable
    threads = str(THREADS)
    return {
        "runcherrypy": [
            python,
            "manage.py",
            "runcherrypy",
            f"127.0.0.1:{port}",
            "--noreload",
            "--skip-checks",
            "--no-access-log",
            "--threads",
            threads,
            "--max-threads",
            threads,
        ],
        "bare cheroot": [python, "bench/bare_cheroot.py", str(port), threads],
        "gunicorn": gunicorn_command(port),
        "waitress": [
            python,
            "-m",
            "waitress",
            f"--threads={threads}",
            f"--listen=127.0.0.1:{port}",
            "cherrytest.wsgi:application",
        ],
    }


def hello(port, count, path="/hello/"):
    """``count`` GETs of ``path`` over ``CONNECTIONS`` keep-alive connections; all must be 200."""

    def run(share):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(share):
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                assert response.status == 200, response.status
        finally:
            connection.close()

    shares = [count // CONNECTIONS + (index < count % CONNECTIONS) for index in range(CONNECTIONS)]
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(run, shares))


def instructions(name, env, workdir, count, path="/hello/"):
    """Instructions executed by server ``name`` (all its processes) from start to stop, answering ``count``
    requests for ``path``."""
    port = free_port()
    out = workdir / f"cg-{name.replace(' ', '-')}-{count}"
    out.mkdir()
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--trace-children=yes",
            f"--cachegrind-out-file={out}/cg.%p",
            *commands(port)[name],
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                hello(port, 1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{name} did not start under valgrind") from None
                time.sleep(0.5)
        hello(port, count, path)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(300)
    total = 0
    for path in out.glob("cg.*"):
        match = re.search(r"^summary:\s+(\d+)", path.read_text(errors="replace"), re.M)
        total += int(match[1]) if match else 0
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, nargs=2, default=[100, 600], metavar=("FEW", "MANY"))
    parser.add_argument("--path", default="/hello/", help="the URL path requested (default /hello/)")
    parser.add_argument("--servers", nargs="+", choices=list(commands(0)), default=list(commands(0)))
    options = parser.parse_args()
    few, many = options.requests
    with tempfile.TemporaryDirectory(prefix="runcherrypy-bench-") as tmp:
        workdir = Path(tmp)
        env = bench_project(workdir)
        costs = {}
        for name in options.servers:
            counts = [instructions(name, env, workdir, count, options.path) for count in (many, few)]
            costs[name] = (counts[0] - counts[1]) / (many - few)
            print(f"{name}: {costs[name]:,.0f} instructions per request for {options.path}", flush=True)
    ours = costs.get("runcherrypy")
    print()
    for name, cost in costs.items() if ours else ():
        if name != "runcherrypy":
            print(f"{name} executes {cost / ours:.2f}x runcherrypy's instructions per request")


if __name__ == "__main__":
    main()
