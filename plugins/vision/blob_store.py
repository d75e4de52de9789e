"""`blob_store`: frames become JPEG files in a store with retention, and packets that carry a
`payload_ref` to them: what lets frames cross a durable inbox or a network sink. Retention
never deletes a JPEG a packet not yet delivered names (`held_blobs.py`)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from schnitzel import (
    CheckContext,
    Compute,
    EnvironmentProblem,
    NodeContext,
    PayloadProfile,
    PluginConfig,
    StreamPacket,
)
from schnitzel_plugins.vision.blobs import BlobStore
from schnitzel_plugins.vision.frame import Frame, FrameDetections
from schnitzel_plugins.vision.held_blobs import HeldBlobs

__all__ = ["BlobStoreConfig", "BlobStoreNode"]


class BlobStoreConfig(PluginConfig):
    """Options of the blob_store node."""

    dir: str = Field(
        default="blobs",
        min_length=1,
        description="Directory of the store; relative to the graph file.",
    )
    max_bytes: StrictInt | None = Field(
        default=1 << 30, ge=1, description="Oldest blobs go once the store is over this."
    )
    max_age_s: StrictFloat | StrictInt | None = Field(
        default=None, gt=0, description="Blobs older than this go; null: kept by size only."
    )
    quality: StrictInt = Field(default=85, ge=1, le=100, description="JPEG quality.")
    fsync: StrictBool = Field(
        default=False, description="fsync each blob before its packet goes on (slower)."
    )


class BlobStoreNode(Compute):
    """JPEG of each frame into a directory with retention; the packet gets its payload_ref."""

    name: ClassVar[str] = "blob_store"
    Config: ClassVar[type[PluginConfig]] = BlobStoreConfig
    accepts = frozenset({"frame", "detection"})
    emits_profile = PayloadProfile.REF_PORTABLE
    max_calls_at_once: ClassVar[int | None] = 8
    """JPEG encoding scales with cores, not beyond an edge box's few; and with a bound, the
    store's `keep_writes` (`context.max_concurrency`) covers every call a throttle can allow."""
    max_batch = 1
    """One frame per call: a batch is then at most `concurrency` frames, so the store's
    `keep_writes` can pin the blobs of the batch in hand (its packets are in no inbox yet)."""

    def __init__(self, config: Any, context: NodeContext) -> None:
        super().__init__(config, context)
        self.store: BlobStore | None = None
        self.held = HeldBlobs(context)

    @classmethod
    def check_environment(cls, config: Any, context: CheckContext) -> list[EnvironmentProblem]:
        path = context.resolve(config.dir)
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            return [
                EnvironmentProblem(
                    f"blob store directory {path} is under {existing}, which is not a directory",
                    "choose another `dir`",
                    config_key="dir",
                )
            ]
        return []

    async def open(self) -> None:
        c = self.config
        root = self.context.resolve(c.dir)
        max_age = float(c.max_age_s) if c.max_age_s is not None else None
        self.store = await asyncio.to_thread(
            BlobStore,
            root,
            c.max_bytes,
            max_age,
            c.fsync,
            pinned=self.held.pinned,
            keep_writes=max(1, self.context.max_concurrency),
        )

    def process(self, packet: StreamPacket) -> StreamPacket:
        import cv2

        payload = packet.payload
        if isinstance(payload, FrameDetections):
            frame, view = payload.frame, payload.portable_view()
        elif isinstance(payload, Frame):
            frame, view = payload, payload.metadata()
        else:
            raise TypeError(
                f"blob_store takes frame or detection packets; {packet.kind} packet "
                f"{packet.packet_id} carries {type(payload).__name__}"
            )
        ok, encoded = cv2.imencode(
            ".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, self.config.quality]
        )
        if not ok:
            raise ValueError(f"OpenCV could not encode frame {frame.index} as JPEG")
        assert self.store is not None
        ref = self.store.put(encoded.tobytes(), "image/jpeg")
        self.held.tell(self.store)
        return packet.evolve(payload=view, payload_ref=ref)

    def stats(self) -> dict[str, Any]:
        """The store's bytes, the blobs retention removed, and what it kept because packets
        not yet delivered name it (`over_by_pinned`: over `max_bytes` only for them)."""
        store = self.store
        if store is None:
            return {}
        # plain reads, no lock: a collection may be waiting for the event loop
        return {
            "bytes": store.total_bytes,
            "removed": store.removed,
            "kept_pinned": store.kept_pinned,
            "over_by_pinned": store.over_by_pinned,
            "pins_unknown": self.held.unknown,
        }
