"""The embedded runtime: runs a validated graph on one asyncio loop (DESIGN 2).

`Runtime` runs a graph and returns the run report; `RuntimeControl` reads its metrics and
steers it while it runs (throttle, pause, resume, stop).
"""

from schnitzel.runtime.control import RuntimeControl
from schnitzel.runtime.runtime import Runtime, StopReason

__all__ = ["Runtime", "RuntimeControl", "StopReason"]
