"""The durable store against a model of what it should hold (hypothesis, stateful): the rules
of tests/runtime/store_rules.py (rows added, read back in order, settled, displaced, moved
out, parked, requeued and dropped from parking, changed on disk in the backlog or while
parked, the store closed and opened again), driven as they are. After every step the file,
the ledger and the model agree, and an open never reports a loss that did not happen.
tests/runtime/test_store_damage_model.py drives the same rules through crashes and damage."""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import initialize

from tests.runtime.store_rules import StoreRules


class StoreModel(StoreRules):
    @initialize()
    def open_store(self) -> None:
        self.start("schnitzel-model-")


StoreModel.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_the_store_holds_what_the_model_holds = StoreModel.TestCase
