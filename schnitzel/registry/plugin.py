"""What a plugin declares: its node kind, config model, ports, packet kinds and profiles.

The validator reads only these declarations, so a graph is checked without running anything.
A plugin class subclasses one of `Source`, `Transform`, `Compute`, `Policy`, `Sink` or
`Delay` and sets class attributes; see docs/plugins.md for a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict

from schnitzel.contract.kinds import PayloadProfile
from schnitzel.registry.apiversion import PLUGIN_API_VERSION
from schnitzel.spec.model import NodeKind

__all__ = [
    "ANY_KIND",
    "SAME_AS_INPUT",
    "CheckContext",
    "Compute",
    "Delay",
    "EnvironmentProblem",
    "KindSet",
    "Plugin",
    "PluginConfig",
    "PluginPack",
    "Policy",
    "SameAsInput",
    "Sink",
    "Source",
    "StreamShape",
    "Transform",
]

KindSet = frozenset[str] | None
"""A set of packet kinds; `None` (ANY_KIND) means any kind, not known before run time."""

ANY_KIND: Final[KindSet] = None


class SameAsInput:
    """Marks an output that carries what came in (kinds or profile of the inputs)."""

    _instance: ClassVar[SameAsInput | None] = None

    def __new__(cls) -> SameAsInput:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SAME_AS_INPUT"


SAME_AS_INPUT: Final = SameAsInput()


class PluginConfig(BaseModel):
    """Base of plugin config models: unknown keys are refused, values are immutable.

    Validators are built on first use (`defer_build`), so installed plugins a graph does not
    use cost nothing at start-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True)
class StreamShape:
    """What flows on an edge, as far as the validator can know before running."""

    kinds: KindSet
    profile: PayloadProfile


@dataclass(frozen=True)
class CheckContext:
    """What `Plugin.check_environment` may look at: where the graph file lives."""

    graph_dir: Path

    def resolve(self, path: str) -> Path:
        """A path from a graph file, resolved against the graph file's directory."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.graph_dir / candidate


@dataclass(frozen=True)
class EnvironmentProblem:
    """Something outside the graph file that will stop a node: a missing input file, ..."""

    message: str
    hint: str
    config_key: str | None = None
    severity: str = "error"


class Plugin:
    """Base of every plugin. Subclass one of the node-kind bases below, not this one."""

    name: ClassVar[str]
    """The name graphs use in `plugin:`; [a-z0-9_-]. Unique per node kind."""
    node_kind: ClassVar[NodeKind]
    """Set by the node-kind base class."""
    api_version: ClassVar[str] = PLUGIN_API_VERSION
    """The plugin API version the plugin was written against (MAJOR.MINOR)."""
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    """The pydantic model of the node's `config:`."""
    inputs: ClassVar[tuple[str, ...]] = ("in",)
    """Input port names; edges name one as `node.port`, the first is the default."""
    outputs: ClassVar[tuple[str, ...]] = ("out",)
    """Output port names; the first is the default."""
    accepts: ClassVar[KindSet] = ANY_KIND
    """Packet kinds the plugin can consume."""
    requires_portable: ClassVar[bool] = False
    """True when input leaves the process (network, disk): only portable payloads may come in."""
    emits: ClassVar[KindSet | SameAsInput] = SAME_AS_INPUT
    """Packet kinds the plugin produces."""
    emits_profile: ClassVar[PayloadProfile | SameAsInput] = SAME_AS_INPUT
    """Payload profile of what the plugin produces."""

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def output_shape(cls, config: Any, incoming: StreamShape | None) -> StreamShape:
        """What the node emits given its config and what reaches it (None for sources).

        The default follows `emits` and `emits_profile`. Override when the output depends on
        the config, as `synthetic` does with its `kind` option.
        """
        if isinstance(cls.emits, SameAsInput):
            kinds = incoming.kinds if incoming is not None else ANY_KIND
        else:
            kinds = cls.emits
        if isinstance(cls.emits_profile, SameAsInput):
            profile = incoming.profile if incoming is not None else PayloadProfile.INPROC_ANY
        else:
            profile = cls.emits_profile
        return StreamShape(kinds, profile)

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        """Problems outside the graph file this node will hit (missing files, ...). Cheap."""
        return []


class Source(Plugin):
    """Produces packets; has no inputs."""

    node_kind: ClassVar[NodeKind] = "source"
    inputs: ClassVar[tuple[str, ...]] = ()


class Transform(Plugin):
    """Turns each packet into zero or more packets."""

    node_kind: ClassVar[NodeKind] = "transform"


class Compute(Plugin):
    """Heavy work on packets (model inference); runs in a worker pool."""

    node_kind: ClassVar[NodeKind] = "compute"


class Policy(Plugin):
    """Decides what passes (dedup, rate limits, routing); hot-swappable by operators."""

    node_kind: ClassVar[NodeKind] = "policy"


class Sink(Plugin):
    """Consumes packets and delivers them somewhere; has no outputs."""

    node_kind: ClassVar[NodeKind] = "sink"
    outputs: ClassVar[tuple[str, ...]] = ()


class Delay(Plugin):
    """Breaks a feedback cycle: emits an initial value first, then what it receives."""

    node_kind: ClassVar[NodeKind] = "delay"


@dataclass(frozen=True)
class PluginPack:
    """What a `schnitzel.plugins` entry point names: a pack of plugin classes.

    In a pack's pyproject.toml::

        [project.entry-points."schnitzel.plugins"]
        mypack = "mypack.plugins:PACK"
    """

    name: str
    plugins: tuple[type[Plugin], ...]
    description: str = ""
