"""A CLOCK_MONOTONIC timerfd armed at absolute times (ctypes; Python 3.11 has no os.timerfd_*)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
PR_SET_TIMERSLACK = 29

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.timerfd_create.restype = ctypes.c_int
_libc.timerfd_settime.argtypes = [
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(_Itimerspec),
    ctypes.c_void_p,
]
_libc.timerfd_settime.restype = ctypes.c_int


def set_timer_slack(ns: int = 1) -> None:
    """Shrink this thread's timer slack (default 50 us) so timer wake-ups are punctual."""
    _libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)


class TimerFd:
    """One-shot absolute timer on CLOCK_MONOTONIC (same clock as time.monotonic())."""

    def __init__(self) -> None:
        fd = _libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd: int = fd
        self._spec = _Itimerspec()
        self._ref = ctypes.byref(self._spec)

    def arm(self, when: float) -> None:
        """Fire at monotonic time `when` (seconds); a time in the past fires at once."""
        if when <= 0.0:
            when = 1e-9
        sec = int(when)
        value = self._spec.it_value
        value.tv_sec = sec
        value.tv_nsec = int((when - sec) * 1e9)
        if _libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, self._ref, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def disarm(self) -> None:
        value = self._spec.it_value
        value.tv_sec = 0
        value.tv_nsec = 0
        _libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, self._ref, None)

    def clear(self) -> None:
        """Consume a pending expiry so the fd stops being readable."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)
