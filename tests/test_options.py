"""The option table: the README's table is made from it, and each option reaches the parser and the server."""

import inspect
import re

import pytest
from django.core.management import call_command

from devserver.management.commands.runcherrypy import Command
from devserver.options import (
    OPTIONS,
    README_END,
    README_START,
    OptionError,
    markdown_table,
    replace_readme_table,
    resolve,
)
from devserver.server import Server

from .process import ROOT


def test_the_readme_table_is_made_from_the_option_table():
    readme = (ROOT / "README.md").read_text()
    assert README_START in readme and README_END in readme
    table = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert table == markdown_table(), "README.md is stale: run python -m devserver.options --readme"
    assert replace_readme_table(readme) == readme


def test_every_flag_is_in_the_parser_and_every_keyword_is_a_server_argument():
    parser = Command().create_parser("manage.py", "runcherrypy")
    known = {flag for action in parser._actions for flag in action.option_strings}
    for option in OPTIONS:
        assert set(option.flags) | set(option.off_flags) <= known, option.name
        if option.keyword:
            assert option.keyword in inspect.signature(Server.__init__).parameters or option.keyword == "max"


def test_the_real_default_of_max_threads(settings, monkeypatch):
    seen = {}
    monkeypatch.setattr(Command, "run", lambda self, **options: seen.update(self.server_options))
    call_command("runcherrypy", "--threads", "200")
    server = Server(("127.0.0.1", 0), None, **seen)
    assert (server.requests.min, server.requests.max) == (200, 200)  # "100, or MIN if more"
    assert (Server(("127.0.0.1", 0), None).requests.min, Server(("127.0.0.1", 0), None).requests.max) == (10, 100)


@pytest.mark.parametrize("option", [option for option in OPTIONS if option.setting], ids=lambda option: option.name)
def test_a_setting_gives_the_default_and_is_checked_by_the_same_converter(settings, option):
    setattr(settings, option.setting, object())
    with pytest.raises(OptionError) as raised:
        resolve([option.name], {}, settings)
    assert re.match(rf"{option.setting}: .+\.$", str(raised.value))
