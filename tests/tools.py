"""Tools from the distribution that some tests need (Chromium, nginx, systemd-socket-activate, openssl): without
one, those tests skip on a developer's machine and fail under CI (``CI`` is set), where ``.ci/run`` installs them."""

import os
import shutil

import pytest


def unavailable(what):
    """Skip the test, or fail it under CI, because ``what`` is missing."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing, and CI must run this test (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


def require(command, package):
    """The path of ``command``, from the distribution's ``package``; else ``unavailable``."""
    # Debian keeps daemons (nginx) in /usr/sbin, which an unprivileged user's PATH may lack.
    path = shutil.which(command) or shutil.which(command, path="/usr/sbin:/sbin")
    if path is None:
        unavailable(f"{command} (apt-get install {package})")
    return path
