"""TLS: the adapter (``TLSAdapter``, with the handshake out of cheroot's accept loop, made without blocking by
``handshake``), a certificate and key from files checked at start-up (``load_adapter``), or, for development, a
certificate issued by a local certificate authority kept for the user (``self_signed``: secure cookies, service
workers and WebAuthn need a secure origin), made by ``trustme`` (an optional dependency: ``pip install trustme``, or
the ``self-signed`` extra), not by hand.
"""

import contextlib
import datetime
import getpass
import hashlib
import logging
import os
import re
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cheroot.ssl.builtin import BuiltinSSLAdapter

from ..access_log import NO_ACCESS_FIELDS
from .response import plain_response

__all__ = [
    "AUTHORITY_ENV",
    "SelfSigned",
    "TLSAdapter",
    "TLSError",
    "authority_folder",
    "handshake",
    "load_adapter",
    "self_signed",
    "trust_instructions",
]

AUTHORITY_ENV = "RUNCHERRYPY_CA_DIR"
"""A folder to keep the local certificate authority in, instead of the user's data folder
(``$XDG_DATA_HOME/runcherrypy``, by default ``~/.local/share/runcherrypy``)."""


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
    _check_pem(certificate, private_key)
    try:
        return TLSAdapter(certificate, private_key)
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        if reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED", "X509_CHECK_PRIVATE_KEY"):
            # An RSA key for an EC certificate says one or the other, by OpenSSL's version.
            raise TLSError(f"The private key {private_key} does not match the certificate {certificate}.") from None
        raise TLSError(f"Cannot load the certificate {certificate} with the key {private_key}: {reason}.") from None
    except OSError as error:
        raise TLSError(f"Cannot load the certificate {certificate}: {error.strerror or error}.") from None


_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def _pem_labels(path):
    """The labels of the PEM blocks in the file at ``path`` (``{"CERTIFICATE", "EC PRIVATE KEY"}``), from its
    first MiB."""
    with open(path, "rb") as file:
        return {label.decode("ascii") for label in _PEM_LABEL.findall(file.read(1 << 20))}


def _check_pem(certificate, private_key):
    """``TLSError`` naming the file and what is wrong with it when the two files do not hold what they should:
    OpenSSL says only ``[SSL] PEM lib`` for each of these, and would ask for a passphrase on the terminal for an
    encrypted key."""
    certificate_labels, key_labels = _pem_labels(certificate), _pem_labels(private_key)
    keys = {label for label in key_labels if label.endswith("PRIVATE KEY")}
    if "CERTIFICATE" not in certificate_labels:
        if any(label.endswith("PRIVATE KEY") for label in certificate_labels) and "CERTIFICATE" in key_labels:
            raise TLSError(
                f"The certificate {certificate} holds a private key and the private key {private_key} a "
                "certificate: --certificate and --private-key are swapped."
            )
        raise TLSError(f"The certificate {certificate} holds no PEM certificate (-----BEGIN CERTIFICATE-----).")
    if not keys:
        raise TLSError(f"The private key {private_key} holds no PEM private key (-----BEGIN PRIVATE KEY-----).")
    if "ENCRYPTED PRIVATE KEY" in keys or _legacy_encrypted(private_key):
        raise TLSError(
            f"The private key {private_key} is encrypted (it would ask for its passphrase): give it decrypted, "
            "readable by root only (openssl pkey -in KEY -out PLAIN)."
        )


def _no_passphrase():
    raise ValueError("the private key is encrypted")


def _legacy_encrypted(path):
    """Whether a traditional PEM private key says ``Proc-Type: 4,ENCRYPTED`` (RFC 1421 headers)."""
    with open(path, "rb") as file:
        return b"Proc-Type: 4,ENCRYPTED" in file.read(1 << 20)


@dataclass(frozen=True)
class SelfSigned:
    """A certificate for development: ``certificate`` and ``private_key`` (PEM files) for ``hosts``, issued by the
    user's local certificate authority, whose certificate is the file ``authority`` (to trust once: ``curl
    --cacert``, a browser's or the system's trust store); ``new_authority``: that authority was made by this run."""

    certificate: str
    private_key: str
    authority: str
    hosts: tuple
    new_authority: bool = False


def authority_folder():
    """Where the local certificate authority is kept: ``$RUNCHERRYPY_CA_DIR``, else ``$XDG_DATA_HOME/runcherrypy``
    (``~/.local/share/runcherrypy``), as mkcert keeps one per user."""
    if os.environ.get(AUTHORITY_ENV):
        return Path(os.environ[AUTHORITY_ENV])
    home = os.path.expanduser("~")
    if home == "~":  # no HOME and no passwd entry: not a folder relative to wherever this runs
        home = os.path.join(tempfile.gettempdir(), f"runcherrypy-{os.getuid()}")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return Path(data) / "runcherrypy"


LEAF_DAYS = 800
"""Days a leaf certificate is valid (Apple's platforms refuse a server certificate valid for more than 825 days, even
from an authority the user added); a leaf is issued again when less than a tenth of that is left."""


def self_signed(hosts, directory=None):
    """A ``SelfSigned`` for ``hosts`` (names and addresses, IPv6 with or without brackets; patterns are left out),
    issued by the user's local certificate authority in ``directory`` (``authority_folder()`` by default), which
    is made the first time (``rootCA.pem``, and its key ``rootCA-key.pem`` readable by the user only, in a folder
    of mode 0700) and reused after, so that a browser told to trust it once trusts every later run. The leaf is
    kept beside it, one for each set of names and authority (its name holds both), valid ``LEAF_DAYS`` and issued
    again near its end. Files are written whole (a temporary file renamed). Nothing is left anywhere else (each
    run made a new authority in a folder of its own under ``/tmp``, and never removed it). ``TLSError`` when
    ``trustme`` is not installed, or the folder cannot be written (it names ``$RUNCHERRYPY_CA_DIR``)."""
    import fcntl  # POSIX only: runcherrypy serves there

    hosts = tuple(dict.fromkeys(host.strip("[]") for host in hosts if _CERTIFIABLE.fullmatch(host.strip("[]"))))
    folder = Path(directory) if directory else authority_folder()
    authority_path, authority_key = folder / "rootCA.pem", folder / "rootCA-key.pem"
    try:
        import trustme
    except ImportError:
        raise TLSError("--self-signed needs the trustme package: pip install trustme.") from None
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the reloader's parent and a test's live server may start at once
            new = not (authority_path.exists() and authority_key.exists())
            if new:
                for stale in folder.glob("leaf-*"):  # issued by an authority that is gone
                    stale.unlink()
                authority = trustme.CA(organization_name=f"runcherrypy local authority ({_whoami()})")
                _write_whole(authority_key, authority.private_key_pem.bytes(), private=True)
                _write_whole(authority_path, authority.cert_pem.bytes())
            else:
                authority = None
            signer = hashlib.sha256(authority_path.read_bytes()).hexdigest()[:8]
            name = f"leaf-{signer}-" + hashlib.sha256(",".join(sorted(hosts)).encode()).hexdigest()[:16]
            made = SelfSigned(str(folder / f"{name}.pem"), str(folder / f"{name}-key.pem"), str(authority_path), hosts)
            fresh = time.time() - LEAF_DAYS * 86400 * 0.9
            if not new and all(
                os.path.exists(path) and os.path.getmtime(path) > fresh for path in (made.certificate, made.private_key)
            ):
                return made
            if authority is None:
                authority = trustme.CA.from_pem(authority_path.read_bytes(), authority_key.read_bytes())
            now = datetime.datetime.now(datetime.UTC)
            issued = authority.issue_cert(
                *hosts,  # from a day back (clocks differ); trustme's default dates from the year 2000
                not_before=now - datetime.timedelta(days=1),
                not_after=now + datetime.timedelta(days=LEAF_DAYS - 1),
            )
            _write_whole(Path(made.private_key), issued.private_key_pem.bytes(), private=True)
            _write_whole(Path(made.certificate), b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    except OSError as error:
        raise TLSError(
            f"Cannot keep the local certificate authority in {folder}: {error.strerror or error} (set "
            f"${AUTHORITY_ENV} to a folder this user may write)."
        ) from None
    return SelfSigned(made.certificate, made.private_key, made.authority, hosts, new_authority=new)


def _write_whole(path, data, private=False):
    """Write ``data`` to ``path`` through a temporary file renamed over it, so that no reader finds it half
    written; ``private``: readable by its owner only, from the start."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def _whoami():
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return socket.gethostname()


def trust_instructions(authority):
    """How to trust the local authority at ``authority`` once, the mkcert way (lines of text)."""
    return [
        f"  A local certificate authority was made for --self-signed: {authority}. Trust it once:",
        f"    curl: --cacert {authority}; Python: SSL_CERT_FILE={authority} (requests: REQUESTS_CA_BUNDLE)",
        f"    Debian, Ubuntu (the system's store: curl, Python, wget): sudo cp {authority} "
        "/usr/local/share/ca-certificates/runcherrypy.crt && sudo update-ca-certificates",
        f"    Chromium, Chrome on Linux: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n runcherrypy -i {authority}",
        f"    Firefox: Settings, Privacy & Security, Certificates, View Certificates, Authorities, Import {authority}",
        f"    macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {authority}",
    ]


class TLSAdapter(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter with the handshake out of the accept loop, TLS 1.2 or newer, ALPN
    ``http/1.1``, and the certificate loaded again on ``reload()`` (SIGHUP).

    ``wrap()`` replaces cheroot's, which makes the handshake on the thread that accepts connections, blocking:
    one client that connects and sends no ClientHello stalls every new connection for ``timeout`` seconds
    (cheroot issue 748). Here it only wraps the socket (``do_handshake_on_connect=False``); ``handshake`` makes it
    without blocking on the selector's thread (``devserver.http.receive``), with the request head's deadline, and
    sets the connection's TLS environ (cheroot's ``get_environ``) once it is done.

    ``certificate``: a PEM file with the certificate and its chain; ``private_key``: a PEM file. Raises what
    ``ssl.SSLContext.load_cert_chain`` raises (``OSError`` for a missing or unreadable file, ``ssl.SSLError``
    for a key that does not match).
    """

    def __init__(self, certificate, private_key):
        super().__init__(certificate, private_key)
        self._configure(self.context)
        self._reload = False

    @staticmethod
    def _configure(context):
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])

    def reload(self):
        """Load the certificate and key again before the next connection (safe in a signal handler: it sets a
        flag). Connections already made keep theirs; a file that does not load leaves the current ones in use."""
        self._reload = True

    def _load(self):
        self._reload = False
        context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
        try:
            _check_pem(self.certificate, self.private_key)
            # A password callback that refuses: OpenSSL would otherwise ask on the terminal, from this thread.
            context.load_cert_chain(self.certificate, self.private_key, password=_no_passphrase)
        except (OSError, ssl.SSLError, TLSError) as error:
            tls_logger.error(
                "The certificate was not reloaded (the one loaded before stays in use): %s",
                error,
                extra=NO_ACCESS_FIELDS,
            )
            return
        self._configure(context)
        self.context = context
        tls_logger.info("Certificate reloaded from %s.", self.certificate, extra=NO_ACCESS_FIELDS)

    def wrap(self, sock):
        if self._reload:
            self._load()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), {}


tls_logger = logging.getLogger("django.server")
"""The certificate's reloads and their failures: through the access log's logger, which Django's default logging
shows at INFO (a successful reload logged on ``devserver.server`` was shown nowhere)."""


_PLAIN_HTTP_TO_TLS = plain_response("400 Bad Request", "This port speaks HTTPS: use an https:// URL.\r\n")


def handshake(server, conn):
    """The TLS handshake of ``conn`` (a connection whose socket ``TLSAdapter`` wrapped), as far as the bytes that
    have come allow, without blocking: ``True`` once done (``conn.ssl_env`` is then set), ``False`` for more to
    come, ``None`` when it failed (the connection is to be closed); plain HTTP sent to the port gets a plain 400
    first, as cheroot answers it."""
    sock = conn.socket
    try:
        sock.do_handshake()
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    except ssl.SSLError as error:
        if "http request" in str(error).lower():
            with contextlib.suppress(OSError):
                os.write(sock.fileno(), _PLAIN_HTTP_TO_TLS)
        return None
    except OSError:
        return None
    conn.handshake_pending = False
    conn.ssl_env = server.ssl_adapter.get_environ(sock)
    return True
