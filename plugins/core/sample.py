"""`sample`: keeps one of every N packets."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, StrictInt

from schnitzel.registry.plugin import PluginConfig, Transform

__all__ = ["Sample", "SampleConfig"]


class SampleConfig(PluginConfig):
    """Options of the sample transform."""

    every: StrictInt = Field(ge=1, description="Keep 1 of every N packets (N >= 1).")


class Sample(Transform):
    """Keeps one of every N packets; the others count as filtered, not dropped."""

    name: ClassVar[str] = "sample"
    Config: ClassVar[type[PluginConfig]] = SampleConfig
