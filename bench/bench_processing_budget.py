"""What the work budget of expressions costs and what it bounds, against the evaluator of an
earlier revision (without it) loaded in the same process.

1. One evaluation of everyday expressions (the filter and the map of
   bench/bench_processing_expr.py and three more), baseline and current interleaved in
   blocks of 2,000, best of 150 blocks each: microseconds and the ratio current / baseline
   (goal: at most ~1.1, the budget costing no more than ~10% of an evaluation).
2. CPU time of one evaluation of heavy but allowed expressions (4 KB, ~150 terms), baseline
   and current with the default budget.
3. The longest one evaluation takes now, with the default budget, over shapes of terms
   (repeated to 4 KB) and sizes of payloads: what the budget bounds an evaluation to.

Run: .venv/bin/python bench/bench_processing_budget.py --before REVISION
(REVISION: a commit whose plugins/processing/expressions.py has no budget, e.g. 8169399.)
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from schnitzel.contract import StreamPacket
from schnitzel_plugins.processing import expressions as current

EVERYDAY = [
    'payload.value > 20 and kind == "sensor"',
    "payload.value * 1.8 + 32",
    'f"{source_id}:{seq}"',
    "round(payload.value * 1.8 + 32, 1)",
    '"a" in payload.tags and len(payload.tags) == 2',
]
HEAVY = {
    "str() of built lists": " and ".join(['str([[0]*999]*100)!=""'] * 145),
    "str() of the payload": " and ".join(['str(payload.big)!=""'] * 160),
    "== of built lists": " and ".join(["[[0]*999]*100==[[0]*999]*100"] * 121),
}
WORST_SHAPES = {
    "str() of small lists": 'str([[0,0]]*{k})!=""',
    "str() of nested lists": 'str([[0]*{k}]*{k})!=""',
    "== of nested lists": "[[0.5]*{k}]*{k}==[[0.5]*{k}]*{k}",
    "str() of payload objects": 'str(payload.objects)!=""',
    "f-string of payload objects": 'f"{{payload.objects}}"!=""',
    "max() of payload numbers": "max(payload.numbers)>=0",
    "arithmetic": "(seq*2+1)*3-seq>0",
}
BLOCK = 2_000
ROUNDS = 150
REPO = Path(__file__).resolve().parent.parent


def baseline(revision: str, scratch: Path) -> ModuleType:
    """The expressions module of `revision`, loaded under another name."""
    text = subprocess.run(
        ["git", "show", f"{revision}:plugins/processing/expressions.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = scratch / "baseline_expressions.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("baseline_expressions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_evaluation_us(expression: Any, packet: StreamPacket) -> float:
    evaluate = expression.evaluate
    start = time.perf_counter()
    for _ in range(BLOCK):
        evaluate(packet)
    return (time.perf_counter() - start) / BLOCK * 1e6


def cpu_ms(expression: Any, packet: StreamPacket) -> tuple[float, str]:
    start = time.process_time()
    try:
        expression.evaluate(packet)
        outcome = "evaluated"
    except Exception as exc:
        if type(exc).__name__ != "ExpressionError":  # the baseline's is its own class
            raise
        outcome = "over budget" if "work budget" in str(exc) else str(exc)[-60:]
    return (time.process_time() - start) * 1000, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the baseline's git revision")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        before = baseline(args.before, Path(scratch))
    payload = {"value": 21.5, "unit": "celsius", "site": "north", "line": 3, "tags": ["a", "b"]}
    packet = StreamPacket.new("sensor", "boiler-1", 7, payload)
    print(f"1. one evaluation, µs (best of {ROUNDS} blocks of {BLOCK:,}, interleaved)")
    for source in EVERYDAY:
        old, new = before.compile_expression(source), current.compile_expression(source)
        best_old = best_new = float("inf")
        for _ in range(ROUNDS):
            best_old = min(best_old, per_evaluation_us(old, packet))
            best_new = min(best_new, per_evaluation_us(new, packet))
        print(
            f"   {source:48s} {args.before} {best_old:5.2f}  now {best_new:5.2f}  "
            f"ratio {best_new / best_old:.3f}"
        )
    big = StreamPacket.new("sensor", "s", 0, {"big": [[1.5] * 1000] * 100})
    print(f"\n2. one heavy evaluation, CPU ms (now: max_work {current.DEFAULT_MAX_WORK:,})")
    for name, source in HEAVY.items():
        old_ms, old_outcome = cpu_ms(before.compile_expression(source), big)
        new_ms, new_outcome = cpu_ms(current.compile_expression(source), big)
        print(
            f"   {name:22s} {len(source):5d} chars  {args.before} {old_ms:8.1f} ({old_outcome})"
            f"  now {new_ms:6.1f} ({new_outcome})"
        )
    worst_cases()


def worst_cases() -> None:
    print(f"\n3. the longest evaluation now (max_work {current.DEFAULT_MAX_WORK:,}), CPU ms")
    for name, shape in WORST_SHAPES.items():
        worst = (0.0, 0, 0, "")
        for n in (10, 1000, 20_000):
            objects = [{"a": 1.5, "b": "x"} for _ in range(n)]
            packet = StreamPacket.new(
                "sensor", "s", 0, {"objects": objects, "numbers": [float(i) for i in range(n)]}
            )
            for k in (2, 10, 100, 300, 1000):
                term = shape.format(k=k)
                source = " and ".join([term] * (4000 // (len(term) + 5)))
                try:
                    expression = current.compile_expression(source)
                except current.ExpressionInvalid:
                    continue
                ms, outcome = cpu_ms(expression, packet)
                worst = max(worst, (ms, n, k, outcome))
        ms, n, k, outcome = worst
        print(f"   {name:28s} {ms:6.1f}  (payload of {n:,}, k={k}: {outcome})")


if __name__ == "__main__":
    main()
