"""A C handle with a closed flag: calls on a closed object raise KneError(STATE), and
close() waits for calls running in other threads, so a handle is never freed under a
running call (no use-after-free, no segfault)."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from .errors import KneError, Status


class Handle:
    def __init__(self, ptr: int, free: Callable[[int], None], what: str) -> None:
        self._ptr: Optional[int] = ptr
        self._free = free
        self._what = what
        self._cv = threading.Condition()
        self._busy: dict = {}  # thread ident -> calls in flight
        self._closing = False

    @property
    def closed(self) -> bool:
        return self._ptr is None or self._closing

    @contextmanager
    def use(self) -> Iterator[int]:
        me = threading.get_ident()
        with self._cv:
            if self._ptr is None or self._closing:
                raise KneError(Status.STATE, f"the {self._what} is closed")
            self._busy[me] = self._busy.get(me, 0) + 1
            ptr = self._ptr
        try:
            yield ptr
        finally:
            with self._cv:
                n = self._busy[me] - 1
                if n:
                    self._busy[me] = n
                else:
                    del self._busy[me]
                if not self._busy:
                    self._cv.notify_all()

    def close(self) -> None:
        me = threading.get_ident()
        with self._cv:
            if self._ptr is None:
                return
            if me in self._busy:
                raise KneError(Status.STATE, f"cannot close the {self._what} from inside a call on it")
            self._closing = True
            while self._busy:
                self._cv.wait()
            ptr, self._ptr = self._ptr, None
        self._free(ptr)
