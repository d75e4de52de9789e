"""The sensors pack: the sources an edge box actually has (DESIGN §5, docs/sensors.md).

Its libraries come with the `sensors` extra (`pip install schnitzel[sensors]`); the plugins
import them only when a node opens, so graphs validate without them.
"""

from schnitzel import PluginPack
from schnitzel_plugins.sensors.http_ingest import HttpIngest

__all__ = ["PACK", "HttpIngest"]

PACK = PluginPack(
    name="sensors",
    plugins=(HttpIngest,),
    description="Edge sources: HTTP ingest for devices and webhooks.",
)
