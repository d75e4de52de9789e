"""The plugin registry: every pack registers through the `schnitzel.plugins` entry-point group.

Built-in packs are found the same way as third-party ones; the core never imports them by
name. A node may also name `module:Class` directly, but only for modules on the allowlist
(`SCHNITZEL_ALLOW_MODULES`, comma-separated, plus the graph's `runtime.allow_modules`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import get_args

from pydantic import BaseModel

from schnitzel.contract.kinds import PayloadProfile
from schnitzel.errors import (
    PluginApiMismatch,
    PluginLoadError,
    PluginNotAllowed,
    PluginNotFound,
)
from schnitzel.registry.apiversion import PLUGIN_API_VERSION, api_compatible
from schnitzel.registry.config_types import PACKET_KIND_PATTERN
from schnitzel.registry.entry_points import PackEntry, group_entry_points
from schnitzel.registry.plugin import Plugin, PluginPack, PluginRef, SameAsInput
from schnitzel.spec.model import NODE_ID_PATTERN, NodeKind
from schnitzel.spec.names import closest

__all__ = [
    "ALLOW_MODULES_ENV",
    "ENTRY_POINT_GROUP",
    "GRAPH_ALLOWLIST_ENV",
    "BrokenPlugin",
    "PluginRegistry",
    "RegisteredPlugin",
    "allowed_modules",
    "check_plugin_class",
]

ENTRY_POINT_GROUP = "schnitzel.plugins"
ALLOW_MODULES_ENV = "SCHNITZEL_ALLOW_MODULES"
GRAPH_ALLOWLIST_ENV = "SCHNITZEL_GRAPH_ALLOWLIST"
"""`off` ignores `runtime.allow_modules` in graphs: for validating graphs you do not trust,
since resolving a `module:Class` reference imports the module, which runs its code."""
_NAME = re.compile(NODE_ID_PATTERN)  # plugin and port names follow the rule for node ids
_KIND = re.compile(PACKET_KIND_PATTERN)
_NODE_KINDS: tuple[str, ...] = get_args(NodeKind)


@dataclass(frozen=True)
class RegisteredPlugin:
    """A plugin class and the pack that registered it."""

    plugin: type[Plugin]
    pack: str


@dataclass(frozen=True)
class BrokenPlugin:
    """A pack or plugin that failed to load, kept so `schnitzel plugins` can show why."""

    pack: str
    name: str | None
    reason: str


def check_plugin_class(obj: object, where: str) -> type[Plugin]:
    """Refuse anything that is not a complete, compatible plugin class. Names the fix."""
    if not (isinstance(obj, type) and issubclass(obj, Plugin)):
        raise PluginLoadError(
            f"{where} is not a plugin class; subclass schnitzel.Source, Transform, Compute, "
            "Policy, Sink or Delay"
        )
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginLoadError(f"{where}: set `name` to a string of [a-z0-9_-] (got {name!r})")
    if getattr(obj, "node_kind", None) not in _NODE_KINDS:
        raise PluginLoadError(
            f"{where}: subclass one of Source, Transform, Compute, Policy, Sink, Delay"
        )
    if not (isinstance(obj.Config, type) and issubclass(obj.Config, BaseModel)):
        raise PluginLoadError(f"{where}: `Config` must be a pydantic model (PluginConfig)")
    _check_declarations(obj, where)
    try:
        compatible = api_compatible(obj.api_version)
    except ValueError as exc:
        raise PluginLoadError(f"{where}: api_version {exc}") from exc
    if not compatible:
        raise PluginApiMismatch(
            f"{where} targets plugin API {obj.api_version}; this runtime provides "
            f"{PLUGIN_API_VERSION}. Install a release of the plugin built for API "
            f"{PLUGIN_API_VERSION.split('.')[0]}.x"
        )
    return obj


def _check_declarations(plugin: type[Plugin], where: str) -> None:
    """The class attributes the validator relies on must have the declared types."""
    for side in ("inputs", "outputs"):
        ports = getattr(plugin, side)
        if not (
            isinstance(ports, tuple) and all(isinstance(p, str) and _NAME.match(p) for p in ports)
        ):
            raise PluginLoadError(f"{where}: `{side}` must be a tuple of port names [a-z0-9_-]")
        if len(set(ports)) != len(ports):
            raise PluginLoadError(f"{where}: `{side}` names a port twice")
    if plugin.node_kind == "source" and plugin.inputs:
        raise PluginLoadError(f"{where}: a source takes no inputs; remove `inputs`")
    if plugin.node_kind == "sink" and plugin.outputs:
        raise PluginLoadError(f"{where}: a sink has no outputs; remove `outputs`")
    if plugin.node_kind not in ("source", "sink") and not (plugin.inputs and plugin.outputs):
        raise PluginLoadError(f"{where}: a {plugin.node_kind} needs at least one input and output")
    if not _is_kind_set(plugin.accepts):
        raise PluginLoadError(f"{where}: `accepts` must be a frozenset of kinds or ANY_KIND")
    if not (_is_kind_set(plugin.emits) or isinstance(plugin.emits, SameAsInput)):
        raise PluginLoadError(
            f"{where}: `emits` must be a frozenset of kinds, ANY_KIND or SAME_AS_INPUT"
        )
    if not isinstance(plugin.emits_profile, PayloadProfile | SameAsInput):
        raise PluginLoadError(f"{where}: `emits_profile` must be a PayloadProfile or SAME_AS_INPUT")
    if not isinstance(plugin.requires_portable, bool):
        raise PluginLoadError(f"{where}: `requires_portable` must be True or False")


def _is_kind_set(value: object) -> bool:
    return value is None or (
        isinstance(value, frozenset)
        and all(isinstance(kind, str) and _KIND.match(kind) for kind in value)
    )


def allowed_modules(graph_allow: Iterable[str] = ()) -> tuple[str, ...]:
    """The module allowlist: the environment variable, plus what the graph adds unless
    `SCHNITZEL_GRAPH_ALLOWLIST=off`."""
    from_env = [m.strip() for m in os.environ.get(ALLOW_MODULES_ENV, "").split(",")]
    if _graph_allowlist_ignored():
        graph_allow = ()
    return tuple(m for m in (*from_env, *graph_allow) if m)


def _graph_allowlist_ignored() -> bool:
    return os.environ.get(GRAPH_ALLOWLIST_ENV, "").strip().lower() in ("off", "0", "no", "false")


def _module_allowed(module: str, allow: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allow)


class PluginRegistry:
    """Plugins by (name, node kind). Build with `from_entry_points()` or from classes."""

    def __init__(
        self,
        packs: Iterable[PluginPack] = (),
        broken: Iterable[BrokenPlugin] = (),
    ) -> None:
        self._plugins: dict[tuple[str, str], RegisteredPlugin] = {}
        self._refs: dict[tuple[str, str], tuple[PluginRef, str]] = {}
        """Plugins a pack named with a PluginRef, not imported yet (with their pack)."""
        self._loading = threading.RLock()
        """Held while a PluginRef is imported: a swap may validate on another thread."""
        self.broken: list[BrokenPlugin] = list(broken)
        """Packs and plugins that failed to load. A `PluginRef` that fails is added when it
        is first imported (`lookup`, `plugins`)."""
        for pack in packs:
            self.add_pack(pack)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> PluginRegistry:
        """Load every pack installed under the entry-point group; failures become `broken`.

        Built-in packs load first, so a third-party pack can never shadow a built-in name.
        """
        registry = cls()
        for entry in sorted(group_entry_points(group), key=_load_order):
            try:
                pack = _load_pack(entry)
            except PluginLoadError as exc:
                registry.broken.append(BrokenPlugin(entry.name, None, str(exc)))
                continue
            registry.add_pack(pack)
        return registry

    def add_pack(self, pack: PluginPack) -> None:
        """Register a pack's plugins; a bad class or a name clash is recorded as broken.
        A `PluginRef` is registered under its declared name and kind, not imported."""
        for obj in pack.plugins:
            if isinstance(obj, PluginRef):
                self._add_ref(obj, pack.name)
                continue
            where = f"plugin {getattr(obj, '__qualname__', obj)!r} in pack {pack.name!r}"
            try:
                plugin = check_plugin_class(obj, where)
            except (PluginLoadError, PluginApiMismatch) as exc:
                self.broken.append(BrokenPlugin(pack.name, getattr(obj, "name", None), str(exc)))
                continue
            key = (plugin.name, plugin.node_kind)
            if not self._claim(key, pack.name):
                continue
            self._plugins[key] = RegisteredPlugin(plugin, pack.name)

    def _add_ref(self, ref: PluginRef, pack: str) -> None:
        where = f"plugin {ref.target!r} in pack {pack!r}"
        if not (isinstance(ref.name, str) and _NAME.match(ref.name)):
            reason = f"{where}: name the plugin with a string of [a-z0-9_-] (got {ref.name!r})"
        elif ref.node_kind not in _NODE_KINDS:
            reason = f"{where}: node_kind must be one of {', '.join(_NODE_KINDS)}"
        elif not _is_reference(ref.target):
            reason = f"{where}: target must be 'module:Class'"
        else:
            key = (ref.name, ref.node_kind)
            if self._claim(key, pack):
                self._refs[key] = (ref, pack)
            return
        self.broken.append(BrokenPlugin(pack, getattr(ref, "name", None), reason))

    def _claim(self, key: tuple[str, str], pack: str) -> bool:
        """True when (name, node kind) is free; a clash is recorded as broken."""
        taken = self._plugins.get(key)
        taken_by = taken.pack if taken is not None else self._refs.get(key, (None, None))[1]
        if taken_by is None:
            return True
        name, node_kind = key
        self.broken.append(
            BrokenPlugin(
                pack,
                name,
                f"{node_kind} plugin {name!r} is already registered by pack {taken_by!r}; "
                f"the one from {pack!r} is ignored: give it another `name` (a graph reaches it "
                "meanwhile as `module:Class`)",
            )
        )
        return False

    def _load_ref(self, key: tuple[str, str]) -> RegisteredPlugin | None:
        """The plugin a PluginRef names, imported now unless it already was; None when `key`
        names no PluginRef, or when it fails (then recorded as broken)."""
        with self._loading:
            found = self._plugins.get(key)
            if found is not None or key not in self._refs:
                return found
            return self._import_ref(key)

    def _import_ref(self, key: tuple[str, str]) -> RegisteredPlugin | None:
        ref, pack = self._refs.pop(key)
        where = f"plugin {ref.target!r} in pack {pack!r}"
        module_name, _, attr = ref.target.partition(":")
        try:
            try:
                with stdout_to_stderr():
                    module = importlib.import_module(module_name)
            except Exception as exc:  # a pack's import error must not stop the others
                raise PluginLoadError(
                    f"{where} failed to import: {type(exc).__name__}: {exc}"
                ) from exc
            plugin = check_plugin_class(getattr(module, attr, None), where)
            if (plugin.name, plugin.node_kind) != key:
                raise PluginLoadError(
                    f"{where} is the {plugin.node_kind} plugin {plugin.name!r}, but the pack "
                    f"names it as the {ref.node_kind} plugin {ref.name!r}; make them agree"
                )
        except (PluginLoadError, PluginApiMismatch) as exc:
            self.broken.append(BrokenPlugin(pack, ref.name, str(exc)))
            return None
        registered = RegisteredPlugin(plugin, pack)
        self._plugins[key] = registered
        return registered

    def _keys(self) -> list[tuple[str, str]]:
        with self._loading:
            return [*self._plugins, *self._refs]

    def plugins(self) -> list[RegisteredPlugin]:
        """Every registered plugin, sorted by name then node kind (imports every PluginRef;
        those that fail join `broken`)."""
        for key in list(self._refs):
            self._load_ref(key)
        return [self._plugins[key] for key in sorted(self._plugins)]

    def names(self) -> list[str]:
        """Every registered plugin name, once."""
        return sorted({name for name, _ in self._keys()})

    def lookup(self, name: str, node_kind: str) -> type[Plugin]:
        """The registered plugin `name` for a node of `node_kind`; PluginNotFound says why not."""
        found = self._plugins.get((name, node_kind)) or self._load_ref((name, node_kind))
        if found is not None:
            return found.plugin
        other_kinds = sorted(kind for plugin_name, kind in self._keys() if plugin_name == name)
        if other_kinds:
            raise PluginNotFound(
                f"plugin {name!r} is a {' and '.join(other_kinds)} plugin, not a {node_kind}; "
                f"set the node's kind to {other_kinds[0]} or pick a {node_kind} plugin"
            )
        broken = [b for b in self.broken if b.name == name]
        if broken:
            raise PluginNotFound(
                f"plugin {name!r} is installed but failed to load: {broken[0].reason}"
            )
        same_kind = sorted(n for n, kind in self._keys() if kind == node_kind)
        close = closest(name, same_kind or self.names())
        hint = f"did you mean {close!r}? " if close is not None else ""
        listing = ", ".join(same_kind) if same_kind else "none"
        raise PluginNotFound(
            f"unknown plugin {name!r}; {hint}{node_kind} plugins installed: {listing}"
        )

    def resolve(
        self,
        reference: str,
        node_kind: str,
        allow: Iterable[str] = (),
        graph_dir: Path | None = None,
    ) -> type[Plugin]:
        """A plugin from a registered name or a `module:Class` reference under the allowlist.

        A module is looked for on the Python path first, then in `graph_dir` (the graph
        file's directory), so a plugin kept next to its graph needs no PYTHONPATH."""
        if ":" not in reference:
            return self.lookup(reference, node_kind)
        module_name, _, attr = reference.partition(":")
        if not module_name or not attr:
            raise PluginNotFound(f"{reference!r} is not a module:Class reference")
        if not _module_allowed(module_name, allow):
            where_to_add = (
                f"{ALLOW_MODULES_ENV} (the graph's own allowlist is ignored: "
                f"{GRAPH_ALLOWLIST_ENV}=off)"
                if _graph_allowlist_ignored()
                else f"runtime.allow_modules in the graph or to {ALLOW_MODULES_ENV}"
            )
            raise PluginNotAllowed(
                f"module {module_name!r} is not on the plugin allowlist; add it to "
                f"{where_to_add}, or register the plugin through a `schnitzel.plugins` entry point"
            )
        module = import_plugin_module(module_name, graph_dir)
        obj = getattr(module, attr, None)
        if obj is None:
            raise PluginLoadError(f"module {module_name!r} has no attribute {attr!r}")
        plugin = check_plugin_class(obj, reference)
        if plugin.node_kind != node_kind:
            raise PluginNotFound(
                f"{reference} is a {plugin.node_kind} plugin, not a {node_kind}; set the "
                f"node's kind to {plugin.node_kind}"
            )
        return plugin


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr, at the file-descriptor level too, for the duration.

    `print()` goes through `sys.stdout`, but a native library loaded by an imported module
    writes to file descriptor 1 directly; both must stay off a JSON report on stdout."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1 at all: only the Python-level redirect is possible
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def import_plugin_module(module_name: str, graph_dir: Path | None) -> ModuleType:
    """Import an allowlisted module from the Python path, else from `graph_dir`.

    The graph's directory is appended to `sys.path` (never put first: a file there cannot
    shadow an installed module), and stays there so the module's own later imports of its
    neighbours work too. What the module prints while it is imported goes to stderr: stdout
    may be a JSON report (`schnitzel validate --json`)."""
    top = module_name.partition(".")[0]
    searched = "on the Python path"
    if graph_dir is not None:
        directory = str(graph_dir.absolute())
        searched += f" nor in {directory} (the graph file's directory)"
        # Already imported counts as found: find_spec raises ValueError for a module in
        # sys.modules without a spec (one run as a script, as bench/bench_durable.py does).
        found = top in sys.modules or importlib.util.find_spec(top) is not None
        if not found and directory not in sys.path:
            sys.path.append(directory)
            importlib.invalidate_caches()
    try:
        with stdout_to_stderr():
            return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == top:
            raise PluginLoadError(
                f"cannot import {module_name!r}: there is no module {top!r} {searched}; "
                f"put {top}.py (or the package {top}/) next to the graph file, or add its "
                "directory to PYTHONPATH"
            ) from exc
        raise PluginLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:  # an allowlisted module's import error, reported to the operator
        raise PluginLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _is_reference(target: object) -> bool:
    if not isinstance(target, str):
        return False
    module_name, _, attr = target.partition(":")
    return bool(module_name) and attr.isidentifier()


def _load_order(entry: PackEntry) -> tuple[bool, str]:
    return (entry.dist != "schnitzel", entry.name)


def _load_pack(entry: PackEntry) -> PluginPack:
    where = f"entry point {entry.name} = {entry.value} ({ENTRY_POINT_GROUP})"
    try:
        obj = entry.load()
    except Exception as exc:  # a third-party pack's import error must not stop the others
        raise PluginLoadError(
            f"{where} failed to import: {type(exc).__name__}: {exc}; check that the pack and "
            "what it imports are installed in the environment schnitzel runs in"
        ) from exc
    if not isinstance(obj, PluginPack):
        raise PluginLoadError(
            f"{where} must name a schnitzel.PluginPack, not {_what_it_is(obj)}; point it at the "
            "pack object: `module:PACK`, where the module has "
            "`PACK = PluginPack(name=..., plugins=(...))` (docs/plugins.md)"
        )
    return obj


def _what_it_is(obj: object) -> str:
    """`the class Scale`, `the module scale_pack`, `an int`: what an entry point named instead."""
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    if isinstance(obj, ModuleType):
        return f"the module {obj.__name__}"
    name = type(obj).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
