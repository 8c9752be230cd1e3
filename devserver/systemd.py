"""systemd's socket activation and readiness notification, in a few lines of the standard library (the protocol of
``sd_listen_fds(3)`` and ``sd_notify(3)``; no dependency for it).

- ``listen_sockets()``: the listening sockets systemd passed (``LISTEN_PID``, ``LISTEN_FDS`` from descriptor 3),
  whatever their family (IPv4, IPv6, unix), when ``LISTEN_PID`` is this process; the variables are removed from the
  environment either way, so that no child takes them for its own.
- ``notify(state)``: ``READY=1`` once serving, ``STOPPING=1`` when stopping, to ``NOTIFY_SOCKET`` when set
  (``Type=notify`` services).
"""

import os
import socket

__all__ = ["LISTEN_FDS_START", "ActivationError", "listen_sockets", "notify"]

LISTEN_FDS_START = 3
"""The first descriptor systemd passes (``SD_LISTEN_FDS_START``)."""


class ActivationError(RuntimeError):
    """Passed descriptors that cannot be served: the message says why, in one line."""


def listen_sockets(environ=None):
    """The sockets passed by systemd for this process, as ``socket.socket`` objects (family and type read from
    each descriptor), or ``[]`` when none were. ``environ`` defaults to ``os.environ``; its ``LISTEN_PID``,
    ``LISTEN_FDS`` and ``LISTEN_FDNAMES`` are removed. ``ActivationError`` for a descriptor that is not a
    listening stream socket, or a ``LISTEN_FDS`` that is not a count.

    cheroot's own ``prepare()`` takes descriptor 3 as an IPv4 socket whenever ``LISTEN_PID`` is set, whoever it
    was meant for (``devserver.server.Server.prepare`` stops that).
    """
    environ = os.environ if environ is None else environ
    pid = environ.pop("LISTEN_PID", None)
    count = environ.pop("LISTEN_FDS", None)
    environ.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None or pid.strip() != str(os.getpid()):
        return []
    if not count.strip().isdigit():
        raise ActivationError(f"LISTEN_FDS is not a count of descriptors: {count!r}.")
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as error:
            raise ActivationError(f"Descriptor {fd} from systemd is not a socket: {error.strerror}.") from None
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.detach()
            raise ActivationError(f"Descriptor {fd} from systemd is not a listening stream socket.")
        os.set_inheritable(fd, False)
        sockets.append(sock)
    return sockets


def notify(state, environ=None):
    """Send ``state`` (``"READY=1"``, ``"STOPPING=1"``, ...) to systemd's ``NOTIFY_SOCKET``, if it is set; return
    whether it was sent. An abstract socket's name starts with ``@``. Errors are ignored: a supervisor that went
    away must not stop the server."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True
