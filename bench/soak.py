"""A soak: many connections on one tile for a minute, with the server's memory and descriptors sampled throughout.

    python bench/soak.py [--seconds 60] [--connections 200]

Run by hand from the project's folder, in its virtualenv, with wrk from the distribution. It starts ``runcherrypy``
on the sample project (DEBUG off, no access log: ``bench/settings.py``) on a free loopback port, pinned to CPU 0,
and wrk on CPU 1 against ``/media/app/tiles/r0-c0.png``; every second it reads the server's VmRSS and thread count
and counts its open descriptors (``/proc``). It prints wrk's totals and errors, RSS and descriptors at the start of
the load, at its end, their highest, and after the load (keep-alive connections closed by the client), and RSS and
threads every 10 s. A server with flat memory ends the load near where its pool reached full size, give or take
its allocator's settling; its descriptors return to their idle count once the clients are gone.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH = "/media/app/tiles/r0-c0.png"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid):
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text)[1]) / 1024


def threads(pid):
    return int(re.search(r"Threads:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())[1])


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="runcherrypy-soak-") as folder:
        folder = Path(folder)
        for name in ("static-root", "static-source"):
            (folder / name).mkdir()
            (folder / name / "site.css").write_text("body {}\n")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_STATIC_ROOT": str(folder / "static-root"),
            "BENCH_STATIC_DIR": str(folder / "static-source"),
            "BENCH_DATABASE": str(folder / "db.sqlite3"),
            "PYTHONPATH": str(ROOT),
        }
        server = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, "manage.py", "runcherrypy", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=2) as response:
                        response.read()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("runcherrypy did not start") from None
                    time.sleep(0.2)
            samples = []
            done = threading.Event()

            def sample():
                while not done.wait(1):
                    samples.append((rss_mib(server.pid), descriptors(server.pid), threads(server.pid)))

            idle = (rss_mib(server.pid), descriptors(server.pid), threads(server.pid))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            wrk = subprocess.run(
                ["taskset", "-c", "1", "wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency"]
                + [f"http://127.0.0.1:{port}{PATH}"],
                capture_output=True,
                text=True,
            )
            done.set()
            sampler.join()
            time.sleep(2)
            after = (rss_mib(server.pid), descriptors(server.pid), threads(server.pid))
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(20)
    print(wrk.stdout.strip())
    errors = re.search(r"Socket errors: .*", wrk.stdout)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk.stdout)
    print()
    print(f"{args.connections} connections for {args.seconds} s on {PATH}")
    print(f"errors: {errors[0] if errors else 'no socket errors'}; non-2xx: {non_2xx[1] if non_2xx else 0}")
    first, last = samples[0], samples[-1]
    print(
        f"RSS MiB: idle {idle[0]:.1f}, load start {first[0]:.1f}, load end {last[0]:.1f}, "
        f"highest {max(s[0] for s in samples):.1f}, after {after[0]:.1f}"
    )
    print("RSS MiB every 10 s: " + ", ".join(f"{sample[0]:.1f}" for sample in samples[::10]))
    print("threads every 10 s: " + ", ".join(str(sample[2]) for sample in samples[::10]) + f"; after {after[2]}")
    print(
        f"descriptors: idle {idle[1]}, load start {first[1]}, load end {last[1]}, "
        f"highest {max(s[1] for s in samples)}, after {after[1]}"
    )


if __name__ == "__main__":
    main()
