"""Text output of a running job, readable while it arrives."""

from __future__ import annotations

import codecs


class OutputBuffer:
    """Accumulates decoded text; ``read_fresh`` returns only what is new since its last call."""

    __slots__ = ("_chunks", "_cursor", "_decoder", "_length", "_text")

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._text = ""  # cache of "".join(_chunks) up to _length characters
        self._length = 0
        self._cursor = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, final: bool = False) -> None:
        """Add raw bytes (split multi-byte characters are kept until complete)."""
        text = self._decoder.decode(data, final)
        if text:
            self._chunks.append(text)
            self._length += len(text)

    def read_all(self) -> str:
        """Everything received so far."""
        if len(self._text) != self._length:
            self._text = "".join(self._chunks)
            self._chunks = [self._text]
        return self._text

    def read_fresh(self) -> str:
        """What arrived since the previous call."""
        text = self.read_all()
        fresh = text[self._cursor :]
        self._cursor = len(text)
        return fresh

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines, for error messages."""
        return "\n".join(self.read_all().rstrip("\n").splitlines()[-lines:])
