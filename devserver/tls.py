"""TLS for ``runcherrypy`` and the live servers for tests: a certificate and key from files, checked at start-up, or
a throwaway self-signed one for development (secure cookies, service workers and WebAuthn need a secure origin).

The adapter itself, with the handshake out of cheroot's accept loop, is ``devserver.cheroot_overrides.TLSAdapter``.
The self-signed certificate is made by ``trustme`` (an optional dependency: ``pip install trustme``, or
``django-runcherrypy[self-signed]``), not by hand.
"""

import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cheroot_overrides import TLSAdapter

__all__ = ["SELF_SIGNED_ENV", "SelfSigned", "TLSError", "load_adapter", "self_signed"]

SELF_SIGNED_ENV = "RUNCHERRYPY_SELF_SIGNED_DIR"
"""Where the reloader's parent leaves its self-signed certificate for its children, so that a reload keeps it
(a browser told to accept it once need not be told again)."""


_CERTIFIABLE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
"""A host name or an address that a certificate can name (ALLOWED_HOSTS may hold patterns)."""


class TLSError(ValueError):
    """A certificate or key that cannot be used; the message is one line that says which and why."""


def load_adapter(certificate, private_key):
    """A ``TLSAdapter`` for ``certificate`` (a PEM file: the certificate, then its chain) and ``private_key`` (a
    PEM file). ``TLSError`` for a file that is missing or unreadable, or not PEM, or a key that does not match."""
    for what, path in (("certificate", certificate), ("private key", private_key)):
        if not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "not readable"
            raise TLSError(f"Cannot read the {what} {path}: {reason}.")
    try:
        return TLSAdapter(certificate, private_key)
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if reason == "KEY_VALUES_MISMATCH":
            raise TLSError(f"The private key {private_key} does not match the certificate {certificate}.") from None
        raise TLSError(f"Cannot load the certificate {certificate} with the key {private_key}: {reason}.") from None
    except OSError as error:
        raise TLSError(f"Cannot load the certificate {certificate}: {error.strerror or error}.") from None


@dataclass(frozen=True)
class SelfSigned:
    """A throwaway certificate: ``certificate`` and ``private_key`` (PEM files), signed by the certificate
    authority in ``authority`` (a PEM file to give a client: ``curl --cacert``, a browser's trust store)."""

    certificate: str
    private_key: str
    authority: str
    hosts: tuple


def self_signed(hosts, directory=None):
    """A ``SelfSigned`` for ``hosts`` (names and addresses, IPv6 with or without brackets; patterns are left
    out), made by ``trustme`` in ``directory`` (a new temporary
    folder by default), or the one already there. ``TLSError`` when ``trustme`` is not installed."""
    hosts = tuple(dict.fromkeys(host.strip("[]") for host in hosts if _CERTIFIABLE.fullmatch(host.strip("[]"))))
    folder = Path(directory or tempfile.mkdtemp(prefix="runcherrypy-tls-"))
    made = SelfSigned(str(folder / "cert.pem"), str(folder / "key.pem"), str(folder / "ca.pem"), hosts)
    if all(os.path.exists(path) for path in (made.certificate, made.private_key, made.authority)):
        return made
    try:
        import trustme
    except ImportError:
        raise TLSError("--self-signed needs the trustme package: pip install trustme.") from None
    authority = trustme.CA(organization_name="runcherrypy (throwaway)")
    issued = authority.issue_cert(*hosts)
    folder.mkdir(parents=True, exist_ok=True)
    issued.private_key_pem.write_to_path(made.private_key)
    os.chmod(made.private_key, 0o600)
    with open(made.certificate, "wb") as file:
        for pem in issued.cert_chain_pems:
            file.write(pem.bytes())
    authority.cert_pem.write_to_path(made.authority)
    return made
