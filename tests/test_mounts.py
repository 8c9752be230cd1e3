"""What is mounted where, from the settings, and how the dispatcher routes to it."""

import pytest
from django.test import override_settings

from devserver.media import FinderHandler, MediaHandler
from devserver.mounts import file_mounts, url_prefix
from devserver.server import build_application

from .wsgi import call


@pytest.mark.parametrize(
    "url, prefix",
    [
        ("/static/", "/static"),
        ("/static", "/static"),
        ("/assets/v2/", "/assets/v2"),
        ("media/", "/media"),
        ("", None),
        (None, None),
        ("/", None),
        ("https://cdn.example.com/static/", None),
        ("//cdn.example.com/static/", None),
    ],
)
def test_url_prefix(url, prefix):
    found, reason = url_prefix(url)
    assert found == prefix
    assert (reason is None) == (prefix is not None)


def by_setting(mounts):
    return {mount.setting: mount for mount in mounts}


@override_settings(DEBUG=True)
def test_debug_serves_static_through_the_finders(settings):
    mounts = by_setting(file_mounts())
    assert isinstance(mounts["STATIC_URL"].app, FinderHandler)
    assert mounts["STATIC_URL"].prefix == "/static"
    assert isinstance(mounts["MEDIA_URL"].app, MediaHandler)
    assert mounts["MEDIA_URL"].app.root == str(settings.MEDIA_ROOT)


@override_settings(DEBUG=False)
def test_without_debug_static_comes_from_static_root(tmp_path, settings):
    settings.STATIC_ROOT = str(tmp_path)
    static = by_setting(file_mounts())["STATIC_URL"]
    assert isinstance(static.app, MediaHandler)
    assert static.app.root == str(tmp_path)


@override_settings(DEBUG=False, STATIC_ROOT=None)
def test_without_debug_or_static_root_static_is_not_served():
    static = by_setting(file_mounts())["STATIC_URL"]
    assert static.app is None and static.prefix is None
    assert "STATIC_ROOT" in static.source


@override_settings(DEBUG=False, STATIC_ROOT=None)
def test_insecure_serves_static_through_the_finders():
    assert isinstance(by_setting(file_mounts(insecure=True))["STATIC_URL"].app, FinderHandler)


def test_nostatic():
    static = by_setting(file_mounts(serve_static=False))["STATIC_URL"]
    assert static.app is None
    assert "--nostatic" in static.source


@override_settings(MEDIA_URL="https://cdn.example.com/media/")
def test_an_absolute_media_url_is_not_mounted():
    media = by_setting(file_mounts())["MEDIA_URL"]
    assert media.app is None
    assert "absolute URL" in media.source


@override_settings(MEDIA_ROOT="")
def test_no_media_root_is_not_mounted():
    assert by_setting(file_mounts())["MEDIA_URL"].app is None


@override_settings(DEBUG=True)
def test_the_dispatcher_routes_by_prefix_and_leaves_the_rest_to_django():
    def django_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"django {environ['SCRIPT_NAME']!r} {environ['PATH_INFO']!r}".encode()]

    application = build_application(django_app, file_mounts())
    assert call(application, "/media/app/picture.png").header("Content-Type") == "image/png"
    assert call(application, "/static/admin/css/base.css").header("Content-Type") == "text/css; charset=utf-8"
    assert call(application, "/staticfoo/x.css").body == b"django '' '/staticfoo/x.css'"
    assert call(application, "/").body == b"django '' '/'"
