"""What a production run does around binding: the pid file, and giving up root once the sockets are bound."""

import contextlib
import grp
import os
import pwd

__all__ = ["Identity", "PidFile", "identity", "socket_owner"]


class Identity:
    """A user and group to switch to (``uid``, ``gid``, ``name``); ``assume()`` switches: supplementary groups
    (those of the user, when a user is given), then the group, then the user, so that root is given up last.
    ``PermissionError`` when the process may not switch (it is not root)."""

    def __init__(self, uid, gid, name):
        self.uid, self.gid, self.name = uid, gid, name

    def assume(self):
        if self.uid is not None and os.geteuid() == self.uid and os.getegid() == self.gid:
            return
        groups = os.getgrouplist(self.name, self.gid) if self.name else [self.gid]
        os.setgroups(groups)
        os.setgid(self.gid)
        if self.uid is not None:
            os.setuid(self.uid)


def identity(user, group):
    """The ``Identity`` for ``--user``/``--group`` (names or numbers), or ``None`` when neither is given;
    ``ValueError`` naming what does not exist."""
    if user is None and group is None:
        return None
    uid = gid = name = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"--user: no such user: {user}") from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ValueError(f"--group: no such group: {group}") from None
    return Identity(uid, gid, name)


def socket_owner(identity, socket_group):
    """``(uid, gid)`` to give a unix socket made as root (``-1``: left as it is), or ``None``: the user of
    ``identity`` (``--user``) and ``socket_group`` (``--socket-group``, a name or a number) or else the identity's
    group. A socket left to root, mode 0660, was refused to nginx's www-data workers. ``ValueError`` naming a group
    that does not exist."""
    uid = gid = -1
    if identity is not None:
        uid = -1 if identity.uid is None else identity.uid
        gid = identity.gid
    if socket_group is not None:
        try:
            gid = (
                grp.getgrgid(int(socket_group)).gr_gid if socket_group.isdigit() else grp.getgrnam(socket_group).gr_gid
            )
        except KeyError:
            raise ValueError(f"--socket-group: no such group: {socket_group}") from None
    return None if uid == gid == -1 else (uid, gid)


class PidFile:
    """``path`` holding this process's id, from ``write()`` to ``remove()`` (which leaves a file that another
    process has written since)."""

    def __init__(self, path):
        self.path = path
        self.pid = None

    def write(self):
        self.pid = os.getpid()
        with open(self.path, "w", encoding="ascii") as file:
            file.write(f"{self.pid}\n")

    def remove(self):
        if self.pid is None:
            return
        with contextlib.suppress(OSError):
            with open(self.path, encoding="ascii") as file:
                if file.read().strip() != str(self.pid):
                    return
            os.unlink(self.path)
        self.pid = None
