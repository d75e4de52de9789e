"""schnitzel: an edge-first stream runtime. This module names what plugin authors use.

Names are imported on first use, so `import schnitzel` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "NodeContext": "schnitzel.registry.plugin",
    "Processor": "schnitzel.registry.plugin",
    "Routed": "schnitzel.runtime.processing",
    "Runtime": "schnitzel.runtime.runtime",
    "RuntimeControl": "schnitzel.control.runtime_control",
    "RuntimeStartError": "schnitzel.errors",
    "ControlError": "schnitzel.errors",
    "StreamPacket": "schnitzel.contract.packet",
    "PayloadRef": "schnitzel.contract.packet",
    "FrozenMeta": "schnitzel.contract.packet",
    "PayloadProfile": "schnitzel.contract.kinds",
    "encode_packet": "schnitzel.contract.codec",
    "decode_packet": "schnitzel.contract.codec",
    "is_encoded_packet": "schnitzel.contract.codec",
    "packet_from_dict": "schnitzel.contract.codec",
    "read_json": "schnitzel.contract.json_input",
    "weakest_profile": "schnitzel.contract.kinds",
    "CheckpointFile": "schnitzel.durable.checkpoint_file",
    "LockFile": "schnitzel.durable.lock_file",
    "RetryOptions": "schnitzel.registry.retry_options",
    "backoff_s": "schnitzel.registry.retry_options",
    "import_extra": "schnitzel.registry.extras",
    "CircuitBreaker": "schnitzel.registry.breaker",
    "BreakerState": "schnitzel.registry.breaker",
    "BreakerChange": "schnitzel.registry.breaker",
    "PLUGIN_API_VERSION": "schnitzel.registry.apiversion",
    "ANY_KIND": "schnitzel.registry.plugin",
    "SAME_AS_INPUT": "schnitzel.registry.plugin",
    "CheckContext": "schnitzel.registry.plugin",
    "EnvironmentProblem": "schnitzel.registry.plugin",
    "Plugin": "schnitzel.registry.plugin",
    "PluginConfig": "schnitzel.registry.plugin",
    "PluginPack": "schnitzel.registry.plugin",
    "PluginRef": "schnitzel.registry.plugin",
    "StreamShape": "schnitzel.registry.plugin",
    "Source": "schnitzel.registry.plugin",
    "Transform": "schnitzel.registry.plugin",
    "Compute": "schnitzel.registry.plugin",
    "Policy": "schnitzel.registry.plugin",
    "Sink": "schnitzel.registry.plugin",
    "Delay": "schnitzel.registry.plugin",
    "PluginRegistry": "schnitzel.registry.registry",
    "JsonObject": "schnitzel.registry.config_types",
    "JsonValue": "schnitzel.registry.config_types",
    "PacketKind": "schnitzel.registry.config_types",
    "KindSet": "schnitzel.registry.plugin",
    "ValidationResult": "schnitzel.validate.validator",
    "ValidationReport": "schnitzel.validate.problems",
    "Problem": "schnitzel.validate.problems",
    "ValidatedGraph": "schnitzel.validate.graph",
    "PluginNotFound": "schnitzel.errors",
    "PluginNotAllowed": "schnitzel.errors",
    "PluginLoadError": "schnitzel.errors",
    "PluginApiMismatch": "schnitzel.errors",
    "validate_file": "schnitzel.validate.validator",
    "validate_text": "schnitzel.validate.validator",
    "load_graph": "schnitzel.validate.validator",
    "SchnitzelError": "schnitzel.errors",
    "GraphError": "schnitzel.errors",
    "GraphLoadError": "schnitzel.errors",
    "GraphInvalid": "schnitzel.errors",
    "PluginError": "schnitzel.errors",
    "PacketError": "schnitzel.errors",
    "PacketNotPortable": "schnitzel.errors",
    "PacketDecodeError": "schnitzel.errors",
    "BadRecord": "schnitzel.errors",
}

__all__ = [
    "ANY_KIND",
    "PLUGIN_API_VERSION",
    "SAME_AS_INPUT",
    "BadRecord",
    "BreakerChange",
    "BreakerState",
    "CheckContext",
    "CheckpointFile",
    "CircuitBreaker",
    "Compute",
    "ControlError",
    "Delay",
    "EnvironmentProblem",
    "FrozenMeta",
    "GraphError",
    "GraphInvalid",
    "GraphLoadError",
    "JsonObject",
    "JsonValue",
    "KindSet",
    "LockFile",
    "NodeContext",
    "PacketDecodeError",
    "PacketError",
    "PacketKind",
    "PacketNotPortable",
    "PayloadProfile",
    "PayloadRef",
    "Plugin",
    "PluginApiMismatch",
    "PluginConfig",
    "PluginError",
    "PluginLoadError",
    "PluginNotAllowed",
    "PluginNotFound",
    "PluginPack",
    "PluginRef",
    "PluginRegistry",
    "Policy",
    "Problem",
    "Processor",
    "RetryOptions",
    "Routed",
    "Runtime",
    "RuntimeControl",
    "RuntimeStartError",
    "SchnitzelError",
    "Sink",
    "Source",
    "StreamPacket",
    "StreamShape",
    "Transform",
    "ValidatedGraph",
    "ValidationReport",
    "ValidationResult",
    "backoff_s",
    "decode_packet",
    "encode_packet",
    "import_extra",
    "is_encoded_packet",
    "load_graph",
    "packet_from_dict",
    "read_json",
    "validate_file",
    "validate_text",
    "weakest_profile",
]

if TYPE_CHECKING:
    from schnitzel.contract.codec import (
        decode_packet,
        encode_packet,
        is_encoded_packet,
        packet_from_dict,
    )
    from schnitzel.contract.json_input import read_json
    from schnitzel.contract.kinds import PayloadProfile, weakest_profile
    from schnitzel.contract.packet import FrozenMeta, PayloadRef, StreamPacket
    from schnitzel.control.runtime_control import RuntimeControl
    from schnitzel.durable.checkpoint_file import CheckpointFile
    from schnitzel.durable.lock_file import LockFile
    from schnitzel.errors import (
        BadRecord,
        ControlError,
        GraphError,
        GraphInvalid,
        GraphLoadError,
        PacketDecodeError,
        PacketError,
        PacketNotPortable,
        PluginApiMismatch,
        PluginError,
        PluginLoadError,
        PluginNotAllowed,
        PluginNotFound,
        RuntimeStartError,
        SchnitzelError,
    )
    from schnitzel.registry.apiversion import PLUGIN_API_VERSION
    from schnitzel.registry.breaker import BreakerChange, BreakerState, CircuitBreaker
    from schnitzel.registry.config_types import JsonObject, JsonValue, PacketKind
    from schnitzel.registry.extras import import_extra
    from schnitzel.registry.plugin import (
        ANY_KIND,
        SAME_AS_INPUT,
        CheckContext,
        Compute,
        Delay,
        EnvironmentProblem,
        KindSet,
        NodeContext,
        Plugin,
        PluginConfig,
        PluginPack,
        PluginRef,
        Policy,
        Processor,
        Sink,
        Source,
        StreamShape,
        Transform,
    )
    from schnitzel.registry.registry import PluginRegistry
    from schnitzel.registry.retry_options import RetryOptions, backoff_s
    from schnitzel.runtime.processing import Routed
    from schnitzel.runtime.runtime import Runtime
    from schnitzel.validate.graph import ValidatedGraph
    from schnitzel.validate.problems import Problem, ValidationReport
    from schnitzel.validate.validator import (
        ValidationResult,
        load_graph,
        validate_file,
        validate_text,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'schnitzel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
