"""The control pack: a PID controller and a simulated plant for feedback loops.

Plugins are named by `PluginRef`s: a plugin's module is imported only when a graph uses it
(or `schnitzel plugins` lists them), so validating a graph costs only the plugins it names.
"""

from schnitzel import PluginPack, PluginRef

__all__ = ["PACK"]

PACK = PluginPack(
    name="control",
    plugins=(
        PluginRef("pid", "transform", "schnitzel_plugins.control.pid:Pid"),
        PluginRef("plant", "transform", "schnitzel_plugins.control.plant:SimulatedPlant"),
    ),
    description="Closed-loop control: pid controller and a first-order simulated plant.",
)
