"""`is_durable`: whether an inbox is a `DurableInbox`, without importing it.

The durable inbox brings SQLite, the packet codec (msgspec) and the durable store with it:
about a tenth of `schnitzel run`'s start-up. Modules that only ask whether an inbox is durable
ask here, so a graph without a durable inbox never imports them; the runtime imports
`durable_inbox` when it builds the first one (`build.py`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    from schnitzel.runtime.durable_inbox import DurableInbox

__all__ = ["is_durable"]

_MODULE = "schnitzel.runtime.durable_inbox"


def is_durable(inbox: object) -> TypeGuard[DurableInbox]:
    """True when `inbox` is a `DurableInbox`. Until that module is imported no instance of it
    can exist, so the answer is False without importing it."""
    module = sys.modules.get(_MODULE)
    return module is not None and isinstance(inbox, module.DurableInbox)
