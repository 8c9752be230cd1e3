"""Django views and TLS, measured side by side: runcherrypy against bare cheroot, gunicorn (gthread), waitress and
granian; runcherrypy with two worker processes against one; HTTPS against plain HTTP, and against gunicorn's.

    python bench/dynamic.py [--rounds 3] [--seconds 5] [--chart bench/dynamic.png]

Run by hand from the project's folder, in its virtualenv with bench/requirements.txt installed and wrk from the
distribution. Every server runs the sample project (``bench/settings.py``: DEBUG off, no access log) with 10 threads
in one process, pinned to CPU 0, with wrk (10 connections, one thread) pinned to CPU 1; they take turns, in a
rotating order, over several rounds, and the medians are printed with runcherrypy's ratios. Measured:

- ``/hello/`` (the smallest view) and ``/`` (the sample's page, a template): requests per second, the 99th
  percentile of latency in ms (wrk --latency), and the server's CPU time per request (``/proc``: steadier than the
  rate on a shared machine);
- ``--workers 2`` against ``--workers 1`` on ``/hello/``, each server on both CPUs (wrk shares CPU 1): requests/s;
- over TLS (a certificate from trustme): a 5 KiB static file and ``/hello/`` from runcherrypy, against the same over
  plain HTTP and against gunicorn with the same certificate.

With ``--chart FILE`` (matplotlib installed), the requests per second are drawn as a PNG. Every server answers on
127.0.0.1 only; every load is bounded by ``--seconds``.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (  # noqa: E402
    CLIENT_CPU,
    SMALL,
    SMALL_SIZE,
    THREADS,
    Server,
    bench_project,
    free_port,
    gunicorn_command,
    request,
)

PAGES = {"hello": "/hello/", "page": "/"}
TARGETS = [  # issue 17's for the hello view; the page's as before
    ("hello req/s", "bare cheroot", 1.15),
    ("hello req/s", "gunicorn", 1.3),
    ("page req/s", "bare cheroot", 1.0),
    ("page req/s", "gunicorn", 1.25),
]


LATENCY_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}  # wrk's latency units, in ms


def wrk(port, path, *, seconds, scheme="http", cpus=CLIENT_CPU, connections=10):
    """``(requests per second, p50 latency in ms, p99 latency in ms, requests)`` of wrk against ``path``, wrk
    pinned to ``cpus`` (``None``: not pinned)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    result = subprocess.run(
        [*command, f"{scheme}://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=seconds + 60
    )
    output = result.stdout
    if result.returncode != 0 or "Non-2xx or 3xx responses" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk reported errors:\n{output}{result.stderr}")

    def percentile(name):
        value, unit = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * LATENCY_UNITS[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    return rate, percentile("50"), percentile("99"), int(re.search(r"(\d+) requests in", output)[1])


def django_servers(env, certificate=None, key=None):
    """The servers of the first comparison: each runs the sample with THREADS threads in one process."""
    python = sys.executable
    ours = [python, "manage.py", "runcherrypy", "--noreload", "--skip-checks", "--no-access-log"]
    threads = ["--threads", str(THREADS), "--max-threads", str(THREADS)]
    found = []

    def add(name, command, **extra):
        port = free_port()
        command = [part.replace("PORT", str(port)) for part in command]
        found.append(Server(name, command, env, port, ready_path="/hello/", **extra))

    add("runcherrypy", [*ours, "127.0.0.1:PORT", *threads])
    add("bare cheroot", [python, "bench/bare_cheroot.py", "PORT", str(THREADS)])
    add("gunicorn", gunicorn_command("PORT"))
    add(
        "waitress",
        [python, "-m", "waitress", f"--threads={THREADS}", "--listen=127.0.0.1:PORT", "cherrytest.wsgi:application"],
    )
    granian = shutil.which("granian", path=str(Path(python).parent))
    if granian:
        add(
            "granian",
            [
                granian,
                "--interface",
                "wsgi",
                "--workers",
                "1",
                "--blocking-threads",
                str(THREADS),
                "--host",
                "127.0.0.1",
                "--port",
                "PORT",
                "cherrytest.wsgi:application",
            ],
        )
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each server once a round (default 3)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--chart", help="draw the requests per second to this PNG file (needs matplotlib)")
    parser.add_argument("--only", choices=["views", "workers", "tls"], action="append", help="run only these parts")
    options = parser.parse_args()
    parts = options.only or ["views", "workers", "tls"]
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install {'wrk' if tool == 'wrk' else 'util-linux'}")

    with tempfile.TemporaryDirectory(prefix="runcherrypy-bench-") as tmp:
        workdir = Path(tmp)
        env = bench_project(workdir)
        results = {}
        if "views" in parts:
            results["views"], rounds = compare(django_servers(env), workdir, options, measure_views)
        if "workers" in parts:
            ours = [sys.executable, "manage.py", "runcherrypy", "--noreload", "--skip-checks", "--no-access-log"]
            servers = []
            for count in (1, 2):
                port = free_port()
                command = [*ours, f"127.0.0.1:{port}", "--workers", str(count), "--threads", str(THREADS)]
                servers.append(
                    Server(
                        f"{count} worker{'s' if count > 1 else ''}",
                        command,
                        env,
                        port,
                        ready_path="/hello/",
                        cpus="0,1",
                    )
                )
            results["workers"] = compare(servers, workdir, options, measure_workers)[0]
        if "tls" in parts:
            results["tls"] = compare(tls_servers(env, workdir), workdir, options, measure_tls)[0]
    report(results, options, rounds if "views" in parts else None)


def tls_servers(env, workdir):
    import trustme

    issued = trustme.CA().issue_cert("127.0.0.1", "localhost")
    certificate, key = workdir / "cert.pem", workdir / "key.pem"
    issued.cert_chain_pems[0].write_to_path(certificate)
    issued.private_key_pem.write_to_path(key)
    python = sys.executable
    threads = ["--threads", str(THREADS), "--max-threads", str(THREADS)]
    ours = [python, "manage.py", "runcherrypy", "--noreload", "--skip-checks", "--no-access-log", *threads]
    found = []
    port = free_port()
    found.append(Server("runcherrypy http", [*ours, f"127.0.0.1:{port}"], env, port, ready_path="/hello/"))
    port = free_port()
    tls = ["--certificate", str(certificate), "--private-key", str(key)]
    found.append(
        Server("runcherrypy https", [*ours, f"127.0.0.1:{port}", *tls], env, port, ready_path="/hello/", scheme="https")
    )
    port = free_port()
    found.append(
        Server(
            "gunicorn https",
            gunicorn_command(port, "--certfile", str(certificate), "--keyfile", str(key)),
            {**env, "BENCH_WHITENOISE": "1"},
            port,
            ready_path="/hello/",
            scheme="https",
        )
    )
    return found


def measure_views(server, seconds):
    results = {}
    for name, path in PAGES.items():
        status = request(server.port, path)[0]
        assert status == 200, (server.name, path, status)
        cpu = server.cpu_seconds()
        results[f"{name} req/s"], _, results[f"{name} p99 ms"], requests = wrk(server.port, path, seconds=seconds)
        # The server's CPU time per request: steadier than the rate on a shared machine.
        results[f"{name} CPU µs/req"] = (server.cpu_seconds() - cpu) / requests * 1e6
    return results


def measure_workers(server, seconds):
    return {"hello req/s": wrk(server.port, "/hello/", seconds=seconds, cpus="0,1")[0]}


def measure_tls(server, seconds):
    results = {}
    for name, path in (("hello", "/hello/"), ("5 KiB file", f"/static/{SMALL}")):
        status, _, body = request(server.port, path, scheme=server.scheme)
        assert status == 200 and (name == "hello" or len(body) == SMALL_SIZE), (server.name, path, status)
        results[f"{name} req/s"] = wrk(server.port, path, seconds=seconds, scheme=server.scheme)[0]
    return results


def compare(servers, workdir, options, measure):
    """Run ``measure(server, seconds)`` on each server, in rotating order, ``options.rounds`` times: ``(medians,
    rounds)``, each keyed by server name, the medians a dict of metric -> value, the rounds a list of such dicts."""
    rounds = {server.name: [] for server in servers}
    try:
        for server in servers:
            server.start(workdir)
        for number in range(options.rounds):
            order = servers[number % len(servers) :] + servers[: number % len(servers)]
            for server in order:
                rounds[server.name].append(measure(server, options.seconds))
                shown = ", ".join(f"{metric} {value:,.1f}" for metric, value in rounds[server.name][-1].items())
                print(f"round {number + 1}: {server.name}: {shown}", flush=True)
    finally:
        for server in servers:
            server.stop()
    medians = {
        name: {metric: statistics.median(each[metric] for each in results) for metric in results[0]}
        for name, results in rounds.items()
    }
    return medians, rounds


def table(medians):
    names = list(medians)
    metrics = list(next(iter(medians.values())))
    lines = [f"| {'':16} | " + " | ".join(f"{name:>17}" for name in names) + " |"]
    lines.append(f"| {'-' * 16} | " + " | ".join("-" * 17 for _ in names) + " |")
    for metric in metrics:
        lines.append(f"| {metric:16} | " + " | ".join(f"{medians[name][metric]:>17,.1f}" for name in names) + " |")
    return "\n".join(lines)


def round_ratios(rounds, metric, peer):
    """runcherrypy's ratio to ``peer`` on ``metric``, round by round (the two measured within one round, seconds
    apart), sorted: the machine's drift over a run cancels out of each, where it does not out of a ratio of
    medians."""
    return sorted(
        ours[metric] / theirs[metric] for ours, theirs in zip(rounds["runcherrypy"], rounds[peer], strict=True)
    )


def report(results, options, rounds=None):
    print(f"\nMedians of {options.rounds} rounds of {options.seconds} s; wrk with 10 connections on CPU {CLIENT_CPU}.")
    if "views" in results:
        medians = results["views"]
        ours = medians["runcherrypy"]
        print(f"\nDjango views, {THREADS} threads in one process on CPU 0:\n\n{table(medians)}\n")
        for metric in ("hello req/s", "page req/s"):
            ratios = ", ".join(
                f"{ours[metric] / m[metric]:.2f}x {name}" for name, m in medians.items() if name != "runcherrypy"
            )
            print(f"runcherrypy {metric}: {ratios}")
        for metric in ("hello CPU µs/req", "page CPU µs/req"):
            ratios = ", ".join(
                f"{m[metric] / ours[metric]:.2f}x {name}'s" for name, m in medians.items() if name != "runcherrypy"
            )
            print(f"runcherrypy {metric}: {ours[metric]:.0f}; the others spend {ratios}")
        for metric in ("hello p99 ms", "page p99 ms"):
            if "granian" in medians:
                ratio = ours[metric] / medians["granian"][metric]
                print(f"runcherrypy {metric}: {ours[metric]:.1f} ms, {ratio:.2f}x granian's")
        for metric, peer, target in TARGETS:
            if peer in medians:
                # Met only if both the ratio of the medians and the median of the rounds' ratios say so.
                ratios = round_ratios(rounds, metric, peer)
                of_medians, by_rounds = ours[metric] / medians[peer][metric], statistics.median(ratios)
                verdict = {2: "met", 1: "within the noise"}.get(
                    (of_medians >= target) + (by_rounds >= target), "NOT met"
                )
                print(
                    f"target {metric} at least {target}x {peer}: {of_medians:.2f}x by the medians, {by_rounds:.2f}x "
                    f"by the rounds' ratios ({ratios[0]:.2f}x to {ratios[-1]:.2f}x), {verdict}"
                )
        if "granian" in medians:
            ratio = ours["hello p99 ms"] / medians["granian"]["hello p99 ms"]
            print(f"target hello p99 at most 2x granian's: {ratio:.2f}x, {'met' if ratio <= 2 else 'NOT met'}")
    if "workers" in results:
        medians = results["workers"]
        ratio = medians["2 workers"]["hello req/s"] / medians["1 worker"]["hello req/s"]
        print(f"\nruncherrypy --workers, both CPUs:\n\n{table(medians)}\n")
        print(f"target --workers 2 at least 1.5x --workers 1: {ratio:.2f}x, {'met' if ratio >= 1.5 else 'NOT met'}")
    if "tls" in results:
        medians = results["tls"]
        print(f"\nHTTPS, {THREADS} threads on CPU 0:\n\n{table(medians)}\n")
        ours = medians["runcherrypy https"]
        for metric in ours:
            print(
                f"runcherrypy https {metric}: {ours[metric] / medians['runcherrypy http'][metric]:.2f}x plain, "
                f"{ours[metric] / medians['gunicorn https'][metric]:.2f}x gunicorn https"
            )
    if options.chart:
        chart(results, options.chart)
        print(f"\nchart: {options.chart}")


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (part, metric)
        for part, metric in (
            ("views", "hello req/s"),
            ("views", "page req/s"),
            ("workers", "hello req/s"),
            ("tls", "hello req/s"),
            ("tls", "5 KiB file req/s"),
        )
        if part in results
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for axis, (part, metric) in zip(axes[0], panels, strict=True):
        names = list(results[part])
        values = [results[part][name][metric] for name in names]
        colours = [
            "#2a7ab0" if name.startswith(("runcherrypy", "1 worker", "2 workers")) else "#aaaaaa" for name in names
        ]
        axis.bar(names, values, color=colours)
        axis.set_title(f"{part}: {metric}")
        axis.tick_params(axis="x", labelrotation=30)
        for index, value in enumerate(values):
            axis.annotate(f"{value:,.0f}", (index, value), ha="center", va="bottom", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
