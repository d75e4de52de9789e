"""Plugin declarations and the registry that finds them through entry points."""

from schnitzel.registry.apiversion import PLUGIN_API_VERSION, api_compatible
from schnitzel.registry.plugin import (
    ANY_KIND,
    SAME_AS_INPUT,
    CheckContext,
    Compute,
    Delay,
    EnvironmentProblem,
    KindSet,
    Plugin,
    PluginConfig,
    PluginPack,
    PluginRef,
    Policy,
    Sink,
    Source,
    StreamShape,
    Transform,
)
from schnitzel.registry.registry import (
    ALLOW_MODULES_ENV,
    ENTRY_POINT_GROUP,
    BrokenPlugin,
    PluginRegistry,
    RegisteredPlugin,
)

__all__ = [
    "ALLOW_MODULES_ENV",
    "ANY_KIND",
    "ENTRY_POINT_GROUP",
    "PLUGIN_API_VERSION",
    "SAME_AS_INPUT",
    "BrokenPlugin",
    "CheckContext",
    "Compute",
    "Delay",
    "EnvironmentProblem",
    "KindSet",
    "Plugin",
    "PluginConfig",
    "PluginPack",
    "PluginRef",
    "PluginRegistry",
    "Policy",
    "RegisteredPlugin",
    "Sink",
    "Source",
    "StreamShape",
    "Transform",
    "api_compatible",
]
