"""The http pack: deliver packets to an HTTP backend."""

from schnitzel import PluginPack
from schnitzel_plugins.http.sink import HttpSink

__all__ = ["PACK", "HttpSink"]

PACK = PluginPack(name="http", plugins=(HttpSink,), description="HTTP delivery.")
