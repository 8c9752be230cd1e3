"""What is mounted where, from the settings, and how the dispatcher routes to it."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from devserver.media import FinderHandler, MediaHandler, hashed_name
from devserver.mounts import build_application, file_mounts, media_options, static_options, url_prefix

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
    assert call(application, "/media/picture.png").header("Content-Type") == "image/png"
    assert call(application, "/static/admin/css/base.css").header("Content-Type") == "text/css; charset=utf-8"
    assert call(application, "/staticfoo/x.css").body == b"django '' '/staticfoo/x.css'"
    assert call(application, "/").body == b"django '' '/'"


class TestCacheSettings:
    @override_settings(DEBUG=True)
    def test_static_revalidates_under_debug(self):
        assert static_options()["cache_control"] == "no-cache"

    @override_settings(DEBUG=False)
    def test_static_max_age_is_60_without_debug(self):
        assert static_options()["cache_control"] == "max-age=60, public"

    @override_settings(RUNCHERRYPY_STATIC_MAX_AGE=3600)
    def test_static_max_age_setting(self):
        assert static_options()["cache_control"] == "max-age=3600, public"

    def test_hashed_names_are_immutable_by_default(self):
        assert static_options()["immutable"] is hashed_name

    @override_settings(RUNCHERRYPY_IMMUTABLE_FILE_TEST=r"^vendor/")
    def test_immutable_test_as_a_regular_expression(self):
        immutable = static_options()["immutable"]
        assert immutable("vendor/jquery.js") and not immutable("app/site.js")

    @override_settings(RUNCHERRYPY_MEDIA_CACHE_CONTROL="private, max-age=300")
    def test_media_cache_control_setting(self):
        assert media_options() == {"cache_control": "private, max-age=300"}

    def test_media_revalidates_by_default(self):
        assert media_options() == {"cache_control": "no-cache"}

    @pytest.mark.parametrize(
        "name, value",
        [
            ("RUNCHERRYPY_STATIC_MAX_AGE", -1),
            ("RUNCHERRYPY_STATIC_MAX_AGE", "60"),
            ("RUNCHERRYPY_IMMUTABLE_FILE_TEST", "("),
            ("RUNCHERRYPY_IMMUTABLE_FILE_TEST", 42),
            ("RUNCHERRYPY_MEDIA_CACHE_CONTROL", 3),
        ],
    )
    def test_a_wrong_setting_is_improperly_configured(self, name, value):
        with override_settings(**{name: value}), pytest.raises(ImproperlyConfigured, match=name):
            static_options()
            media_options()

    @override_settings(DEBUG=True)
    def test_the_mounted_handlers_carry_the_policy(self):
        application = build_application(lambda environ, start_response: [], file_mounts())
        assert call(application, "/media/picture.png").header("Cache-Control") == "no-cache"
        assert call(application, "/static/admin/css/base.css").header("Cache-Control") == "no-cache"
