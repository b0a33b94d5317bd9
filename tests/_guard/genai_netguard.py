"""Fail any socket connection to a non-loopback address (tests touch only 127.0.0.0/8 and ::1)."""

from __future__ import annotations

import ipaddress
import socket

_installed = False


class NonLoopbackConnection(RuntimeError):
    pass


def _check(address) -> None:
    if not isinstance(address, tuple):  # AF_UNIX paths are local
        return
    host = address[0]
    if host in ("localhost",):
        return
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        # A name: resolve it here so a hostname cannot smuggle a remote address through.
        try:
            infos = socket.getaddrinfo(host, None)
        except OSError:
            raise NonLoopbackConnection(f"blocked connection to unresolvable host {host!r}") from None
        for info in infos:
            _check((info[4][0],))
        return
    if not ip.is_loopback and not ip.is_unspecified:
        raise NonLoopbackConnection(f"blocked non-loopback connection to {host} (tests are loopback only)")


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    orig_connect = socket.socket.connect
    orig_connect_ex = socket.socket.connect_ex

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        return orig_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        return orig_connect_ex(self, address)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
