"""Short, fixed-width renderings of figures for the console: rates, sizes, durations, bars.

Every function returns plain text (no markup) so widgets can measure it with `len` and style
it themselves; each keeps its output short enough for a box a dozen cells wide.
"""

from __future__ import annotations

import math

__all__ = ["bar", "format_bytes", "format_count", "format_rate", "format_seconds"]

_EIGHTHS = " ▏▎▍▌▋▊▉"
_FULL = "█"


def _scaled(value: float, units: tuple[tuple[float, str], ...]) -> tuple[str, str]:
    """`value` as a number of at most three significant figures and the unit it is in."""
    for scale, unit in units:
        v = value / scale
        if v < 9.95:
            return f"{v:.1f}".removesuffix(".0"), unit
        if v < 999.5 or unit == units[-1][1]:
            return f"{v:.0f}", unit
    raise AssertionError("unreachable: the last unit takes any value")


def format_rate(per_s: float) -> str:
    """A rate per second in at most six cells: `0/s`, `0.5/s`, `12/s`, `1.2k/s`, `3.4M/s`.

    Negative or non-finite rates (a counter reset, a clock step) show as `0/s`.
    """
    if not math.isfinite(per_s) or per_s <= 0:
        return "0/s"
    number, unit = _scaled(per_s, ((1, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")))
    return f"{number}{unit}/s"


def format_bytes(n: int) -> str:
    """A size in binary units, as the graph-file docs count them: `512 B`, `1.2 MiB`."""
    if n < 1024:
        return f"{max(n, 0)} B"
    number, unit = _scaled(
        float(n), ((1024, "KiB"), (1024**2, "MiB"), (1024**3, "GiB"), (1024**4, "TiB"))
    )
    return f"{number} {unit}"


def format_seconds(seconds: float | None) -> str:
    """A duration in at most eight cells, to the unit that matters at its size: `—`
    (unknown), `45 s`, `3 m 20 s`, `16 m`, `2 h 05 m`, `14 h`, `3 d 04 h`, `42 d`, `>99 d`."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s} s"
    if s < 600:
        return f"{s // 60} m {s % 60:02d} s".replace(" m 00 s", " m")
    if s < 3600:
        return f"{s // 60} m"
    if s < 10 * 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} m".replace(" h 00 m", " h")
    if s < 86400:
        return f"{s // 3600} h"
    if s < 10 * 86400:
        return f"{s // 86400} d {s % 86400 // 3600:02d} h".replace(" d 00 h", " d")
    if s < 100 * 86400:
        return f"{s // 86400} d"
    return ">99 d"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `width` cells long, filled to `fraction` (clamped to 0..1) in eighths."""
    if width <= 0:
        return ""
    fraction = min(max(fraction, 0.0), 1.0) if math.isfinite(fraction) else 0.0
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = _FULL * full + (_EIGHTHS[part] if part else "")
    return text.ljust(width)


def format_count(n: int) -> str:
    """A count in at most five cells: `950`, `12.3k`, `4.5M`."""
    if n < 10_000:
        return str(max(n, 0))
    number, unit = _scaled(float(n), ((1e3, "k"), (1e6, "M"), (1e9, "G")))
    return f"{number}{unit}"
