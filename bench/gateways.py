"""The sample's page through a front server, for each shape a host may allow, measured side by side:

- ``http``: nginx ``proxy_pass`` to ``runcherrypy`` on a unix socket (``deploy/nginx/runcherrypy.conf``'s shape);
- ``scgi``: nginx ``scgi_pass`` to the long-running ``runscgi`` on a unix socket (``deploy/nginx/scgi.conf``);
- ``scgi per process``: nginx ``scgi_pass`` to a socket on which ``systemd-socket-activate --accept --inetd``
  starts ``runscgi --inetd`` for each connection (``deploy/systemd/runscgi-inetd.*``);
- ``cgi``: Apache's mod_cgi running the script ``cgi_script`` writes (``deploy/apache/cgi.conf``).

    python bench/gateways.py [--seconds 10]

Run by hand from the project's folder, in its virtualenv, with nginx, Apache, systemd-socket-activate and wrk from
the distribution. Each shape serves the sample (``bench/settings.py``: DEBUG off) with 10 threads where it has
threads, in turn; wrk asks for ``/`` with 1 connection (the time one request takes: p50 and p99) and with 10
(requests per second), for ``--seconds`` each. Printed: requests/s, p50 and p99 in ms, and each shape's ratio to
``http``. Everything answers on 127.0.0.1 only.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dynamic import wrk  # noqa: E402
from bench.run import ROOT, THREADS, bench_project, free_port, request  # noqa: E402
from tests.front import recipe, start_apache, start_nginx  # noqa: E402


def nginx_in_front(folder, site_name, socket_path, port, upstream):
    """nginx on ``port`` with a recipe of ``deploy/nginx`` pointing at ``socket_path``."""
    if site_name == "runcherrypy.conf":  # its HTTPS server block stands for the plain one here
        site = f"""server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://unix:{socket_path};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
    }}
}}
"""
    else:
        site = recipe(
            f"nginx/{site_name}",
            [
                (upstream, f"unix:{socket_path}"),
                ("listen 80;", f"listen 127.0.0.1:{port};"),
                ("example.com", "localhost"),
            ],
        )
    return start_nginx(folder, site, port)


def wait_until_served(port, timeout=60):
    """Until ``/`` answers 200 through the front server (its upstream may not listen yet: a 502)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if request(port, "/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"/ was not served on port {port} within {timeout} s")


def start(command, env, folder, name):
    with open(folder / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def shapes(env, workdir):
    """``(name, start)`` for each shape; ``start()`` returns ``(port, stop)``."""
    python = [sys.executable, str(ROOT / "manage.py")]
    threads = ["--threads", str(THREADS), "--max-threads", str(THREADS)]

    def behind_nginx(name, command, site_name, upstream, wait_for_socket=True):
        def run():
            folder = workdir / name.replace(" ", "-")
            folder.mkdir()
            sock = folder / "app.sock"
            process = start([part.replace("SOCK", str(sock)) for part in command], env, folder, "app")
            while wait_for_socket and not sock.exists():
                if process.poll() is not None:
                    raise RuntimeError((folder / "app.log").read_text())
            port = free_port()
            nginx = nginx_in_front(folder, site_name, sock, port, upstream)

            def stop():
                nginx.stop()
                process.terminate()
                process.wait(20)

            return port, stop

        return run

    def cgi():
        folder = workdir / "cgi"
        folder.mkdir()
        (folder / "cgi-bin").mkdir()
        subprocess.run(
            [*python, "cgi_script", "--output", str(folder / "cgi-bin/site.cgi")],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        settings = "\n".join(f"SetEnv {name} {value}" for name, value in env.items())
        site = recipe(
            "apache/cgi.conf",
            [
                # The site at the root, as the others.
                ("ScriptAlias /cgi-bin/ /usr/lib/cgi-bin/", f"ScriptAlias / {folder}/cgi-bin/site.cgi/"),
                ("/usr/lib/cgi-bin", str(folder / "cgi-bin")),
                ("SetEnv DJANGO_ALLOWED_HOSTS example.com", settings),
            ],
        )
        port = free_port()
        apache = start_apache(folder, site, port, ["cgi"])
        return port, apache.stop

    passed = [f"-E{name}={value}" for name, value in env.items()]
    return [
        (
            "http",
            behind_nginx(
                "http",
                [*python, "runcherrypy", "--noreload", "--no-access-log", "--unix-socket", "SOCK", *threads],
                "runcherrypy.conf",
                None,
            ),
        ),
        (
            "scgi",
            behind_nginx(
                "scgi",
                [*python, "runscgi", "--noreload", "--unix-socket", "SOCK", *threads],
                "scgi.conf",
                "unix:/run/runscgi/site.sock",
            ),
        ),
        (
            "scgi per process",
            behind_nginx(
                "scgi per process",
                [
                    "systemd-socket-activate",
                    "--accept",
                    "--inetd",
                    "-l",
                    "SOCK",
                    *passed,
                    *python,
                    "runscgi",
                    "--inetd",
                ],
                "scgi.conf",
                "unix:/run/runscgi/site.sock",
            ),
        ),
        ("cgi", cgi),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--only", action="append", help="run only this shape (http, scgi, ...; more than once)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateways-") as workdir:
        workdir = Path(workdir)
        os.chmod(workdir, 0o755)
        env = bench_project(workdir)
        results = {}
        for name, run in shapes(env, workdir):
            if options.only and name not in options.only:
                continue
            port, stop = run()
            try:
                wait_until_served(port)
                wrk(port, "/", connections=1, seconds=1, cpus=None)  # warm up: the first request loads the project
                _, p50, p99, _ = wrk(port, "/", connections=1, seconds=options.seconds, cpus=None)
                rate, _, _, requests = wrk(port, "/", connections=10, seconds=options.seconds, cpus=None)
            finally:
                stop()
            results[name] = (rate, p50, p99, requests)
            print(f"{name}: {rate:.1f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms ({requests} requests)", flush=True)
    base = results["http"][0] if "http" in results else None
    print("\n| shape | req/s (10 connections) | against http | p50 ms (1 connection) | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (rate, p50, p99, _) in results.items():
        ratio = f"{rate / base:.3f}×" if base else "-"
        print(f"| {name} | {rate:.1f} | {ratio} | {p50:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
