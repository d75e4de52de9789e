"""The http pack: deliver packets to an HTTP backend."""

from schnitzel_plugins.http.sink import HttpSink

from schnitzel.registry.plugin import PluginPack

__all__ = ["PACK", "HttpSink"]

PACK = PluginPack(name="http", plugins=(HttpSink,), description="HTTP delivery.")
