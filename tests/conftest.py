import os
import shutil

import pytest

from .process import ROOT, SAMPLE, Runcherrypy, Runscgi


@pytest.fixture(autouse=True, scope="session")
def local_authority(tmp_path_factory):
    """--self-signed's local certificate authority in a folder of the test run's (the processes started inherit
    the variable), not in the user's data folder."""
    folder = tmp_path_factory.mktemp("authority") / "runcherrypy"
    previous = os.environ.get("RUNCHERRYPY_CA_DIR")
    os.environ["RUNCHERRYPY_CA_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("RUNCHERRYPY_CA_DIR", None)
    else:
        os.environ["RUNCHERRYPY_CA_DIR"] = previous


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``runcherrypy`` on the tests' project, on a free loopback port, shared by a module's tests."""
    running = Runcherrypy(tmp_path_factory.mktemp("server"), "127.0.0.1:0", "--noreload")
    yield running
    assert running.stop() == 0, running.output


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory):
    """``runcherrypy`` on the sample project (``cherrytest``), as its README starts it, on a free loopback port."""
    running = Runcherrypy(tmp_path_factory.mktemp("sample"), "127.0.0.1:0", "--noreload", **SAMPLE)
    yield running
    assert running.stop() == 0, running.output


@pytest.fixture
def start_server(tmp_path):
    """Start a ``runcherrypy`` of the test's own (for tests that stop it or change its options)."""
    started = []

    def start(*args, **env):
        running = Runcherrypy(tmp_path, *args, **env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def runscgi(tmp_path):
    """Start a long-running ``runscgi --noreload`` with the given arguments and environment; stopped at the end."""
    started = []

    def start(*args, **env):
        running = Runscgi(tmp_path, "--noreload", *args, **env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def project(tmp_path):
    """A copy of the sample project to edit; devserver still comes from this checkout."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "manage.py", copy)
    shutil.copytree(ROOT / "cherrytest", copy / "cherrytest", ignore=shutil.ignore_patterns("__pycache__", "media"))
    return copy


@pytest.fixture
def reloading(project, tmp_path):
    """Start ``runcherrypy`` under the reloader on ``project`` (a copy of the sample), on a free port: the
    reloader's parent binds it once for every child. Stopped at the end."""
    started = []

    def start(*args, pythonpath=(), **env):
        server = Runcherrypy(
            tmp_path,
            "127.0.0.1:0",
            *args,
            cwd=project,
            PYTHONPATH=os.pathsep.join([*map(str, pythonpath), str(ROOT)]),
            **{**SAMPLE, **env},
        )
        started.append(server)
        # No wait for the watcher: a change saved before it watches is looked for once it does.
        assert server.wait_for("Watching for file changes with")
        return server

    yield start
    for server in started:
        server.stop()
