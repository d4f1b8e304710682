"""Date and duration formatting in artron's text formats.

artron writes dates as UTC with milliseconds and a trailing ``Z``
(``2018-08-29T20:02:39.606Z``) and durations as ``HH:MM:SS`` (``00:00:15``); reports
and task records built by :mod:`jobgraph.compat.artron` use exactly these strings.
"""

from __future__ import annotations

import datetime as _dt
import time

__all__ = ["strdate", "strgmtime"]


def strgmtime(gmtime: time.struct_time | float) -> str:
    """Format a duration as ``HH:MM:SS`` (seconds are truncated, not rounded).

    ``gmtime`` is a :class:`time.struct_time` (as ``time.gmtime(seconds)`` gives) or a
    number of seconds. Anything else is a :class:`ValueError`.

    >>> strgmtime(time.gmtime(1.8))
    '00:00:01'
    >>> strgmtime(3725.0)
    '01:02:05'
    """
    if isinstance(gmtime, (int, float)) and not isinstance(gmtime, bool):
        gmtime = time.gmtime(gmtime)
    if not isinstance(gmtime, time.struct_time):
        raise ValueError(
            f"strgmtime() takes a time.struct_time or a number of seconds, "
            f"not {type(gmtime).__name__}"
        )
    return time.strftime("%H:%M:%S", gmtime)


def strdate(date: _dt.datetime | None = None) -> str:
    """Format a date as artron does: ``2018-07-31T12:15:03.749Z`` (now when omitted).

    An aware datetime is converted to UTC first; a naive one is taken to be UTC already
    (the trailing ``Z`` says UTC). Anything but a datetime is a :class:`ValueError`.

    >>> strdate(_dt.datetime(2018, 7, 31, 12, 15, 3, 749512))
    '2018-07-31T12:15:03.749Z'
    """
    if date is None:
        date = _dt.datetime.now(_dt.timezone.utc)
    if not isinstance(date, _dt.datetime):
        raise ValueError(f"strdate() takes a datetime.datetime, not {type(date).__name__}")
    if date.tzinfo is not None:
        date = date.astimezone(_dt.timezone.utc)
    # Milliseconds: drop the last three digits of the microseconds.
    return date.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
