"""The control pack: a PID controller and a simulated plant for feedback loops."""

from schnitzel import PluginPack
from schnitzel_plugins.control.pid import Pid
from schnitzel_plugins.control.plant import SimulatedPlant

__all__ = ["PACK", "Pid", "SimulatedPlant"]

PACK = PluginPack(
    name="control",
    plugins=(Pid, SimulatedPlant),
    description="Closed-loop control: pid controller and a first-order simulated plant.",
)
