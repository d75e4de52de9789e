"""The sensors pack: the sources an edge box actually has (DESIGN §5, docs/sensors.md).

Its libraries come with the `sensors` extra (`pip install schnitzel[sensors]`); the plugins
import them only when a node opens, so graphs validate without them.
"""

from schnitzel import PluginPack
from schnitzel_plugins.sensors.audio_file import AudioFile
from schnitzel_plugins.sensors.audio_level import AudioLevel
from schnitzel_plugins.sensors.http_ingest import HttpIngest
from schnitzel_plugins.sensors.mavlink_source import MavlinkSource
from schnitzel_plugins.sensors.mcap_source import McapSource
from schnitzel_plugins.sensors.microphone import Microphone
from schnitzel_plugins.sensors.serial_source import SerialSource

__all__ = [
    "PACK",
    "AudioFile",
    "AudioLevel",
    "HttpIngest",
    "MavlinkSource",
    "McapSource",
    "Microphone",
    "SerialSource",
]

PACK = PluginPack(
    name="sensors",
    plugins=(
        HttpIngest,
        SerialSource,
        AudioFile,
        AudioLevel,
        McapSource,
        MavlinkSource,
        Microphone,
    ),
    description="Edge sources: HTTP ingest, serial devices, audio files, microphones and their "
    "levels, MCAP logs, MAVLink telemetry.",
)
