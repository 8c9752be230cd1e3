"""pytest plugin (entry point ``pytest11``): the ``cherrypy_live_server`` fixture, pytest-django's
``live_server`` on cheroot, and ``cherrypy_live_server_https``.

Loaded automatically once ``django-runcherrypy`` is installed; it needs pytest-django.
"""

import os

import pytest

LIVE_SERVERS = ("cherrypy_live_server", "cherrypy_live_server_https")


def _live_server(request, **kwargs):
    from devserver.testing import LiveServer

    address = (
        request.config.getoption("liveserver", None) or os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    )
    host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "0")
    if kwargs.get("https"):
        port = "0"  # beside the plain one
    return LiveServer(host, int(port or 0), **kwargs)


@pytest.fixture(scope="session")
def cherrypy_live_server(request):
    """A cheroot live server with ``runcherrypy``'s mounts, started once per session in a thread; ``.url`` is
    its base URL (``cherrypy_live_server + "/path"`` works too).

    The address comes from ``--liveserver`` or DJANGO_LIVE_TEST_SERVER_ADDRESS (``host`` or ``host:port``), as
    for ``live_server``; default ``localhost`` on a free port. A test that uses it gets transactional database
    access (``pytest_collection_modifyitems``), since the server's threads do not see the test's transaction.
    """
    server = _live_server(request)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cherrypy_live_server_https(request):
    """``cherrypy_live_server`` over HTTPS, with a certificate from the local authority of ``--self-signed`` (needs
    ``trustme``), on a free port of the same host: for secure cookies, service workers, WebAuthn. ``.authority`` is the
    file of the certificate authority to trust (``ssl.create_default_context(cafile=...)``; a browser may ignore HTTPS
    errors instead)."""
    server = _live_server(request, https=True)
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
        if names is not None and any(name in names for name in LIVE_SERVERS) and "transactional_db" not in names:
            names.insert(0, "transactional_db")  # first: the database is set up before the test's other fixtures


@pytest.fixture(autouse=True)
def _cherrypy_live_server_helper(request):
    """For a test that uses a live server of this plugin: the server's host in ALLOWED_HOSTS, for that test only
    (as pytest-django's ``_live_server_helper`` does for ``live_server``)."""
    servers = [request.getfixturevalue(name) for name in LIVE_SERVERS if name in request.fixturenames]
    for server in servers:
        server.modified_settings.enable()
    yield
    for server in reversed(servers):
        server.modified_settings.disable()
