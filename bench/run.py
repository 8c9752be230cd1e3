"""Static-file serving, measured side by side: runcherrypy against WhiteNoise on gunicorn, runserver and nginx.

    python bench/run.py [--rounds 3] [--seconds 5]

Run by hand from the project's folder, in its virtualenv with bench/requirements.txt installed and wrk (and, when
available, nginx) from the distribution. Each server is pinned to CPU 0 and wrk to CPU 1 (``taskset``); the servers
take turns, in a rotating order, over several rounds, and the medians are printed with runcherrypy's ratios to the
peers. Measured, on the same files for every server:

- a 5 KiB static file: requests per second (wrk, 10 connections);
- a 304 for it: requests per second, with If-None-Match and If-Modified-Since as a browser sends them;
- a 100 MB file, one connection: MB/s, and the server's CPU seconds per GiB sent (utime + stime of its process
  tree, from /proc), which is what to compare on loopback, where the client is the bottleneck;
- the growth of the server's resident memory (VmRSS of its process tree, sampled every 10 ms) while 10 clients
  download the 100 MB file at once.

Every server answers on 127.0.0.1 only; every load is bounded by --seconds.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = "five.css"
LARGE = "large.bin"
SMALL_SIZE = 5 * 1024
LARGE_SIZE = 100 * 1000 * 1000
THREADS = 10
SERVER_CPU, CLIENT_CPU = "0", "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGETS = (  # issue 17's
    ("5 KiB file", "whitenoise", 3.5, "at least"),
    ("304", "whitenoise", 3.0, "at least"),
    ("CPU s per GiB", "nginx", 1.0, "at most"),
)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_files(workdir):
    """The files every server serves: a 5 KiB stylesheet and a 100 MB file, in a STATICFILES_DIRS folder (for
    runserver's finders) and a STATIC_ROOT (for the others), as collectstatic would copy them."""
    source, collected = workdir / "static-src", workdir / "static-root"
    source.mkdir()
    rule = b"body { margin: 0; padding: 0; color: #222; background: #fff; font-family: sans-serif; }\n"
    (source / SMALL).write_bytes((rule * (SMALL_SIZE // len(rule) + 1))[:SMALL_SIZE])
    with open(source / LARGE, "wb") as file:
        block = os.urandom(1024 * 1024)
        for _ in range(LARGE_SIZE // len(block)):
            file.write(block)
        file.write(block[: LARGE_SIZE % len(block)])
    shutil.copytree(source, collected)
    return source, collected


def bench_project(workdir):
    """Set the sample project up in ``workdir`` as the benchmarks serve it (``make_files``, a migrated database of
    its own) and return the environment of a server running it (``bench/settings.py``)."""
    source, collected = make_files(workdir)
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "BENCH_STATIC_ROOT": str(collected),
        "BENCH_STATIC_DIR": str(source),
        "BENCH_DATABASE": str(workdir / "db.sqlite3"),
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env={**os.environ, **env}, check=True)
    return env


def gunicorn_command(port, *options):
    """gunicorn with gthread workers: one process of ``THREADS`` threads on the sample, with ``options``."""
    threads = str(THREADS)
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        "1",
        "--threads",
        threads,
        *options,
        "--bind",
        f"127.0.0.1:{port}",
        "cherrytest.wsgi",
    ]


@dataclass
class Server:
    name: str
    command: list
    env: dict = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen = None
    ready_path: str = f"/static/{SMALL}"
    cpus: str = SERVER_CPU
    scheme: str = "http"

    def start(self, workdir):
        log = open(workdir / f"{self.name}.log", "wb")
        self.process = subprocess.Popen(
            ["taskset", "-c", self.cpus, *self.command],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n" + (workdir / f"{self.name}.log").read_text())
            try:
                if request(self.port, self.ready_path, scheme=self.scheme)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def pids(self):
        """The server's process and its descendants (gunicorn's and nginx's workers)."""
        found, queue = [], [self.process.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                queue.extend(int(child) for child in task.read_text().split())
        return found

    def cpu_seconds(self):
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14 and 15)
        return total / CLOCK_TICKS

    def rss_bytes(self):
        total = 0
        for pid in self.pids():
            match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
            total += int(match[1]) * 1024 if match else 0
        return total


def request(port, path, headers=None, scheme="http"):
    if scheme == "https":
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=30, context=ssl._create_unverified_context()
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def servers(workdir, env):
    python = sys.executable
    collected = env["BENCH_STATIC_ROOT"]
    found = []
    port = free_port()
    found.append(
        Server(
            "runcherrypy",
            [
                python,
                "manage.py",
                "runcherrypy",
                f"127.0.0.1:{port}",
                "--noreload",
                "--skip-checks",
                "--threads",
                str(THREADS),
                "--max-threads",
                str(THREADS),
            ],
            env,
            port,
        )
    )
    port = free_port()
    found.append(
        Server(
            "whitenoise",
            gunicorn_command(port),
            {**env, "BENCH_WHITENOISE": "1"},
            port,
        )
    )
    port = free_port()
    found.append(
        Server(
            "runserver",
            [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks", "--insecure"],
            {**env, "DJANGO_RUNSERVER_HIDE_WARNING": "true"},
            port,
        )
    )
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if nginx:
        port = free_port()
        prefix = workdir / "nginx"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(
            f"""
daemon off;
worker_processes 1;
{"user root;" if os.geteuid() == 0 else ""}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {collected}/; }}
    }}
}}
"""
        )
        found.append(Server("nginx", [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")], {}, port))
    else:
        print("nginx is not installed (apt-get install nginx-light): measured without it.\n")
    return found


WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read")
UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def wrk(port, path, *, connections, seconds, headers=()):
    command = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s"]
    for header in headers:
        command += ["-H", header]
    result = subprocess.run(
        [*command, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 60
    )
    output = result.stdout
    if result.returncode != 0 or "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk reported errors:\n{output}{result.stderr}")
    match = WRK_TOTAL.search(output)
    requests, read = int(match[1]), float(match[4]) * UNITS[match[5]]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    return requests, rate, read


def measure(server, seconds):
    """One round of every measurement on one server: a dict of metric name -> value."""
    results = {}
    status, headers, body = request(server.port, f"/static/{SMALL}")
    assert status == 200 and len(body) == SMALL_SIZE, (server.name, status, len(body))
    results["5 KiB file"] = wrk(server.port, f"/static/{SMALL}", connections=10, seconds=seconds)[1]

    validators = []
    if headers["ETag"]:
        validators.append(f"If-None-Match: {headers['ETag']}")
    if headers["Last-Modified"]:
        validators.append(f"If-Modified-Since: {headers['Last-Modified']}")
    status = request(server.port, f"/static/{SMALL}", dict(v.split(": ", 1) for v in validators))[0]
    if status == 304:
        results["304"] = wrk(server.port, f"/static/{SMALL}", connections=10, seconds=seconds, headers=validators)[1]

    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    _, _, read = wrk(server.port, f"/static/{LARGE}", connections=1, seconds=seconds)
    elapsed = time.monotonic() - started
    cpu = server.cpu_seconds() - cpu_before
    results["100 MB, MB/s"] = read / elapsed / 1e6
    results["CPU s per GiB"] = cpu / (read / 1024**3)

    baseline = server.rss_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.wait(0.01):
            try:
                peak[0] = max(peak[0], server.rss_bytes())
            except (OSError, ValueError):
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    wrk(server.port, f"/static/{LARGE}", connections=10, seconds=max(3, seconds // 2))
    done.set()
    sampler.join()
    results["RSS growth, MB"] = (peak[0] - baseline) / 1e6
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each server once a round (default 3)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    options = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'}")
    if os.cpu_count() < 2:
        sys.exit("needs two CPUs: one for the server, one for wrk")

    with tempfile.TemporaryDirectory(prefix="runcherrypy-bench-") as tmp:
        workdir = Path(tmp)
        running = servers(workdir, bench_project(workdir))
        try:
            for server in running:
                server.start(workdir)
            rounds = {server.name: [] for server in running}
            for number in range(options.rounds):
                order = running[number % len(running) :] + running[: number % len(running)]
                for server in order:
                    rounds[server.name].append(measure(server, options.seconds))
                    print(f"round {number + 1}: {server.name} {format_round(rounds[server.name][-1])}", flush=True)
        finally:
            for server in running:
                server.stop()
    report(rounds, options)


def format_round(results):
    return ", ".join(f"{name} {value:,.2f}" for name, value in results.items())


def report(rounds, options):
    metrics = ["5 KiB file", "304", "100 MB, MB/s", "CPU s per GiB", "RSS growth, MB"]
    medians = {
        name: {metric: statistics.median(r[metric] for r in results) for metric in metrics if metric in results[0]}
        for name, results in rounds.items()
    }
    names = list(medians)
    print(
        f"\nMedians of {options.rounds} rounds of {options.seconds} s; server on CPU {SERVER_CPU}, wrk on CPU "
        f"{CLIENT_CPU}; {THREADS} threads for runcherrypy and gunicorn.\n"
    )
    print(f"| {'':16} | " + " | ".join(f"{name:>11}" for name in names) + " |")
    print(f"| {'-' * 16} | " + " | ".join("-" * 11 for _ in names) + " |")
    for metric in metrics:
        cells = [f"{medians[name][metric]:>11,.2f}" if metric in medians[name] else f"{'n/a':>11}" for name in names]
        print(f"| {metric:16} | " + " | ".join(cells) + " |")
    ours = medians["runcherrypy"]
    print()
    for metric in metrics[:4]:
        ratios = [
            f"{ours[metric] / medians[name][metric]:.2f}x {name}"
            for name in names
            if name != "runcherrypy" and metric in medians[name] and metric in ours and medians[name][metric]
        ]
        print(f"runcherrypy {metric}: " + ", ".join(ratios))
    print()
    for metric, peer, target, sense in TARGETS:
        if peer not in medians or metric not in medians[peer]:
            print(f"target {metric} {sense} {target}x {peer}: not measured ({peer} missing)")
            continue
        ratio = ours[metric] / medians[peer][metric]
        met = ratio >= target if sense == "at least" else ratio <= target
        print(f"target {metric} {sense} {target}x {peer}: {ratio:.2f}x, {'met' if met else 'NOT met'}")
    growth = ours["RSS growth, MB"]
    print(f"target RSS growth under 10 downloads below 20 MB: {growth:.1f} MB, {'met' if growth < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
