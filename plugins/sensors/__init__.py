"""The sensors pack: the sources an edge box actually has (DESIGN §5, docs/sensors.md).

Its libraries come with the `sensors` extra (`pip install schnitzel[sensors]`); the plugins
import them only when a node opens, so graphs validate without them. Plugins are named by
`PluginRef`s: a plugin's module is imported only when a graph uses it.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

_HERE = "schnitzel_plugins.sensors"

PACK = PluginPack(
    name="sensors",
    plugins=(
        PluginRef("http_ingest", "source", f"{_HERE}.http_ingest:HttpIngest"),
        PluginRef("serial", "source", f"{_HERE}.serial_source:SerialSource"),
        PluginRef("audio_file", "source", f"{_HERE}.audio_file:AudioFile"),
        PluginRef("audio_level", "transform", f"{_HERE}.audio_level:AudioLevel"),
        PluginRef("mcap", "source", f"{_HERE}.mcap_source:McapSource"),
        PluginRef("mavlink", "source", f"{_HERE}.mavlink_source:MavlinkSource"),
        PluginRef("microphone", "source", f"{_HERE}.microphone:Microphone"),
    ),
    description="Edge sources: HTTP ingest, serial devices, audio files, microphones and their "
    "levels, MCAP logs, MAVLink telemetry.",
)
