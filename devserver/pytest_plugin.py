"""pytest plugin (entry point ``pytest11``): the ``cherrypy_live_server`` fixture, pytest-django's
``live_server`` on cheroot.

Loaded automatically once ``django-runcherrypy`` is installed; it needs pytest-django.
"""

import os

import pytest


@pytest.fixture(scope="session")
def cherrypy_live_server(request):
    """A cheroot live server with ``runcherrypy``'s mounts, started once per session in a thread; ``.url`` is
    its base URL (``cherrypy_live_server + "/path"`` works too).

    The address comes from ``--liveserver`` or DJANGO_LIVE_TEST_SERVER_ADDRESS (``host`` or ``host:port``), as
    for ``live_server``; default ``localhost`` on a free port. A test that uses it gets transactional database
    access (``pytest_collection_modifyitems``), since the server's threads do not see the test's transaction.
    """
    from devserver.testing import LiveServer

    address = (
        request.config.getoption("liveserver", None) or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    )
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "0")
    server = LiveServer(host, int(port or 0))
    yield server
    server.stop()


def pytest_collection_modifyitems(items):
    """A test that uses ``cherrypy_live_server`` gets transactional database access, whatever else it asks for.

    pytest-django decides once per test, in ``_django_db_helper``, whether the test runs in a transaction that is
    rolled back (``db``, ``@pytest.mark.django_db``) or with real commits, and it picks the latter when the test's
    fixture names include ``transactional_db`` or ``live_server``. The server's threads do not see a transaction
    that is never committed (and SQLite reports the table locked), so ``transactional_db`` is put first among the
    names of such tests here, before any fixture runs, as if the test had asked for it.
    """
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is not None and "cherrypy_live_server" in names and "transactional_db" not in names:
            names.insert(0, "transactional_db")  # first: the database is set up before the test's other fixtures


@pytest.fixture(autouse=True)
def _cherrypy_live_server_helper(request):
    """For a test that uses ``cherrypy_live_server``: the server's host in ALLOWED_HOSTS, for that test only (as
    pytest-django's ``_live_server_helper`` does for ``live_server``)."""
    if "cherrypy_live_server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("cherrypy_live_server")
    server.modified_settings.enable()
    yield
    server.modified_settings.disable()
