"""A minimal ctypes binding of Debian's libsrt (libsrt1.5-gnutls / -openssl): what a live-mode
listener needs (bind, listen, accept, the caller's streamid, receive, close). Blocking calls are
made from threads; ctypes releases the GIL around them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import struct
import threading

# srt.h: SRT_SOCKOPT values and error codes (stable since libsrt 1.3).
SRTO_RCVSYN = 2
SRTO_RCVTIMEO = 14
SRTO_STREAMID = 46
SRTO_TRANSTYPE = 50
SRTT_LIVE = 0
SRT_ERROR = -1
SRT_INVALID_SOCK = -1
SRT_EASYNCRCV = 6002
SRT_ETIMEOUT = 6003
STREAMID_MAX = 512
LOG_CRIT = 2  # syslog level
LIBRARY_NAMES = ("libsrt-gnutls.so.1.5", "libsrt-openssl.so.1.5", "libsrt.so.1.5", "srt-gnutls", "srt-openssl", "srt")


class SrtError(OSError):
    """A libsrt call failed (the message is libsrt's)."""


class SrtTimeout(SrtError):
    """Nothing arrived within the receive timeout; the connection is still up."""


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("data", ctypes.c_ubyte * 128)]  # room for sockaddr_in and sockaddr_in6


def _load() -> ctypes.CDLL:
    for name in LIBRARY_NAMES:
        path = name if name.endswith(".5") else ctypes.util.find_library(name)
        if not path:
            continue
        try:
            return ctypes.CDLL(path, use_errno=True)
        except OSError:
            continue
    raise SrtError("libsrt is not installed (Debian: apt-get install libsrt1.5-gnutls)")


class LibSrt:
    """The library, loaded and started once per process."""

    _instance: LibSrt | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        lib = _load()
        lib.srt_startup.restype = ctypes.c_int
        lib.srt_create_socket.restype = ctypes.c_int
        lib.srt_bind.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.srt_listen.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.srt_accept.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.srt_accept.restype = ctypes.c_int
        lib.srt_close.argtypes = [ctypes.c_int]
        lib.srt_setsockflag.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.srt_getsockflag.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.srt_recvmsg.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.srt_recvmsg.restype = ctypes.c_int
        lib.srt_getlasterror.argtypes = [ctypes.POINTER(ctypes.c_int)]
        lib.srt_getlasterror.restype = ctypes.c_int
        lib.srt_getlasterror_str.restype = ctypes.c_char_p
        if lib.srt_startup() < 0:
            raise SrtError("srt_startup failed")
        lib.srt_setloglevel(LOG_CRIT)  # our own log says what matters; libsrt would print to stderr
        self.lib = lib

    @classmethod
    def get(cls) -> LibSrt:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _error(self) -> SrtError:
        code = self.lib.srt_getlasterror(None)
        message = (self.lib.srt_getlasterror_str() or b"").decode(errors="replace")
        if code in (SRT_EASYNCRCV, SRT_ETIMEOUT):
            return SrtTimeout(code, message)
        return SrtError(code, message)

    def _set_int(self, sock: int, option: int, value: int) -> None:
        number = ctypes.c_int(value)
        if self.lib.srt_setsockflag(sock, option, ctypes.byref(number), ctypes.sizeof(number)) == SRT_ERROR:
            raise self._error()

    def listen(self, host: str, port: int, backlog: int = 16) -> int:
        """A live-mode listening socket on ``host:port`` (IPv4)."""
        sock = self.lib.srt_create_socket()
        if sock == SRT_INVALID_SOCK:
            raise self._error()
        try:
            self._set_int(sock, SRTO_TRANSTYPE, SRTT_LIVE)
            address = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)
            buffer = ctypes.create_string_buffer(address, len(address))
            if self.lib.srt_bind(sock, buffer, len(address)) == SRT_ERROR:
                raise self._error()
            if self.lib.srt_listen(sock, backlog) == SRT_ERROR:
                raise self._error()
        except BaseException:
            self.lib.srt_close(sock)
            raise
        return sock

    def listen_acquired(self, udp_fd: int, backlog: int = 16) -> int:
        """A live-mode listening socket on an already bound UDP socket (``srt_bind_acquire``): libsrt
        owns ``udp_fd`` from then on and closes it with the listener. Datagrams queued on it before
        (a caller's first handshake) are read by libsrt."""
        sock = self.lib.srt_create_socket()
        if sock == SRT_INVALID_SOCK:
            raise self._error()
        try:
            self._set_int(sock, SRTO_TRANSTYPE, SRTT_LIVE)
            self.lib.srt_bind_acquire.argtypes = [ctypes.c_int, ctypes.c_int]
            if self.lib.srt_bind_acquire(sock, udp_fd) == SRT_ERROR:
                raise self._error()
            if self.lib.srt_listen(sock, backlog) == SRT_ERROR:
                raise self._error()
        except BaseException:
            self.lib.srt_close(sock)
            raise
        return sock

    def bound_port(self, sock: int) -> int:
        address = _SockaddrIn()
        length = ctypes.c_int(ctypes.sizeof(address))
        self.lib.srt_getsockname.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        if self.lib.srt_getsockname(sock, ctypes.byref(address), ctypes.byref(length)) == SRT_ERROR:
            raise self._error()
        return struct.unpack("!H", bytes(address.data[2:4]))[0]

    def accept(self, listener: int) -> tuple[int, str, int]:
        """(socket, peer address, peer port) of the next caller; blocks. SrtError once closed."""
        address = _SockaddrIn()
        length = ctypes.c_int(ctypes.sizeof(address))
        sock = self.lib.srt_accept(listener, ctypes.byref(address), ctypes.byref(length))
        if sock == SRT_INVALID_SOCK:
            raise self._error()
        raw = bytes(address.data)
        family = struct.unpack("=H", raw[:2])[0]
        port = struct.unpack("!H", raw[2:4])[0]
        if family == socket.AF_INET6:
            host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        else:
            host = socket.inet_ntoa(raw[4:8])
        return sock, host, port

    def streamid(self, sock: int) -> str:
        buffer = ctypes.create_string_buffer(STREAMID_MAX + 1)
        length = ctypes.c_int(STREAMID_MAX)
        if self.lib.srt_getsockflag(sock, SRTO_STREAMID, buffer, ctypes.byref(length)) == SRT_ERROR:
            raise self._error()
        return buffer.raw[: length.value].decode("utf-8", errors="replace")

    def set_receive_timeout(self, sock: int, milliseconds: int) -> None:
        self._set_int(sock, SRTO_RCVTIMEO, milliseconds)

    def receive(self, sock: int, size: int = 1500) -> bytes:
        """One message (live mode: up to 1316 bytes of MPEG-TS); SrtTimeout if none came in time,
        SrtError once the connection is gone."""
        buffer = ctypes.create_string_buffer(size)
        count = self.lib.srt_recvmsg(sock, buffer, size)
        if count == SRT_ERROR:
            raise self._error()
        return buffer.raw[:count]

    def close(self, sock: int) -> None:
        self.lib.srt_close(sock)
