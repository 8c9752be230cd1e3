"""Listening sockets made before a server takes them (``listen_on``): by a master of ``--workers``, by the
reloader's parent for its children, and by ``Server.bind_unix_socket``; and closed (``close_listening``)."""

import contextlib
import errno
import os
import socket
import stat

from cheroot.server import HTTPServer

__all__ = ["UnixSocketError", "close_listening", "listen_on"]


class UnixSocketError(OSError):
    """A unix socket could not be made; ``strerror`` is one line that names the path and says why."""


def _check_socket_path(path):
    """``OSError`` (with an errno and a message that says why) unless a unix socket can be made at ``path``: nothing
    there, or a socket file that no server answers on (left by one that was killed)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise FileExistsError(errno.EEXIST, "the path exists and is not a socket (left as it is)")
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1)
        try:
            probe.connect(path)
        except OSError:
            return  # stale: cheroot removes it
    raise OSError(errno.EADDRINUSE, "another server is listening on it")


def listen_on(address, *, socket_mode=None, owner=None, backlog=socket.SOMAXCONN):
    """A bound, listening socket for ``address`` (``(host, port)`` or a unix socket path), made as
    ``Server.prepare`` makes one (cheroot's ``prepare_socket``: ``SO_REUSEADDR``, dual-stack on ``::``; a unix
    socket checked by ``_check_socket_path``, given ``owner`` (``(uid, gid)``, ``-1`` for either left as it is:
    ``devserver.privileges.socket_owner``) and ``socket_mode``, before ``listen()``), for a master process that
    passes it to its workers. Raises ``UnixSocketError`` or the ``OSError`` of binding (``socket.gaierror`` for a
    host name that does not resolve)."""
    if isinstance(address, str):
        try:
            _check_socket_path(address)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)  # stale: _check_socket_path found nobody listening on it
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(address)
                if owner is not None:
                    try:
                        os.chown(address, *owner)
                    except OSError as error:
                        with contextlib.suppress(OSError):
                            os.unlink(address)  # not left behind, bound by nobody
                        raise OSError(
                            error.errno, f"cannot give it to user {owner[0]}, group {owner[1]} ({error.strerror})"
                        ) from None
                if socket_mode is not None:
                    os.chmod(address, socket_mode)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
        except OSError as error:
            reason = error.strerror or str(error)
            raise UnixSocketError(error.errno, f"Cannot listen on the unix socket {address}: {reason}.") from error
        return sock
    host, port = address
    family, kind, proto, _, bound = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    sock = HTTPServer.prepare_socket(bound, family, kind, proto, True, None)
    try:
        HTTPServer.bind_socket(sock, bound)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def close_listening(sock):
    """Close a listening socket made by ``listen_on``; a unix socket's file is removed too."""
    if sock.family == socket.AF_UNIX:
        with contextlib.suppress(OSError):
            os.unlink(sock.getsockname())
    sock.close()
