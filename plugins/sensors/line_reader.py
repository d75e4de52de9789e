"""Lines out of a byte stream read in pieces: pure logic, no device.

A serial device hands over whatever arrived before a read timed out: half a line, three
lines and a bit. `LineSplitter` keeps the unfinished tail until its newline arrives, and
cuts a line that grows past `max_bytes` (a device sending garbage without newlines must not
fill the memory).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Line", "LineSplitter"]


@dataclass(frozen=True)
class Line:
    """One line without its line ending; `cut` when it was longer than allowed."""

    raw: bytes
    cut: bool = False


class LineSplitter:
    """Feed it bytes; it gives back the complete lines, keeping the unfinished tail."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tail = b""
        self._cutting = False
        """True while skipping the rest of a line that was too long."""

    def feed(self, data: bytes) -> list[Line]:
        """The lines `data` completes, in order."""
        lines: list[Line] = []
        pieces = (self._tail + data).split(b"\n")
        self._tail = pieces.pop()
        for piece in pieces:
            if self._cutting:
                self._cutting = False
                continue  # the end of a line already reported as cut
            lines.append(_line(piece, self.max_bytes))
        if len(self._tail) > self.max_bytes:
            if not self._cutting:
                lines.append(Line(self._tail[: self.max_bytes], cut=True))
            self._cutting, self._tail = True, b""
        return lines

    def reset(self) -> None:
        """Forget the unfinished tail (the device went away mid-line)."""
        self._tail, self._cutting = b"", False


def _line(piece: bytes, max_bytes: int) -> Line:
    piece = piece.removesuffix(b"\r")
    if len(piece) > max_bytes:
        return Line(piece[:max_bytes], cut=True)
    return Line(piece)
