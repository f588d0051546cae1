"""Status codes and the exception every libkne failure becomes."""
from __future__ import annotations

import enum
from typing import Union

__all__ = ["Status", "KneError"]


class Status(enum.IntEnum):
    """The ``kne_status`` values of ``kne.h`` (append-only; values never change)."""

    OK = 0
    INVALID_ARG = -1
    NOT_FOUND = -2
    IO = -3
    FORMAT = -4
    DTYPE = -5
    MISSING_TENSOR = -6
    SHAPE = -7
    UNSUPPORTED = -8
    DEVICE = -9
    BACKEND = -10
    OUT_OF_MEMORY = -11
    CANCELLED = -12
    BUFFER_TOO_SMALL = -13
    TOO_LONG = -14
    ENCODING = -15
    NUMERIC = -16
    MISMATCH = -17
    STATE = -18
    EMPTY = -19


def _as_status(code: Union[int, Status]) -> Union[int, Status]:
    try:
        return Status(int(code))
    except ValueError:  # a status newer than this package: keep the raw int
        return int(code)


class KneError(Exception):
    """A libkne call failed.

    Attributes:
        status: the :class:`Status` (an ``int`` enum; a plain ``int`` for a code
            newer than this package).
        message: the library's message (``kne_last_error()``) or the wrapper's.
    """

    status: Union[int, Status]
    message: str

    def __init__(self, status: Union[int, Status], message: str = "") -> None:
        self.status = _as_status(status)
        self.message = message
        super().__init__(self.status, message)

    @property
    def name(self) -> str:
        """The status name, e.g. ``"INVALID_ARG"``."""
        return self.status.name if isinstance(self.status, Status) else str(self.status)

    def __str__(self) -> str:
        return f"[{self.name}] {self.message}" if self.message else f"[{self.name}]"

    def __repr__(self) -> str:
        return f"KneError({self.name}, {self.message!r})"
