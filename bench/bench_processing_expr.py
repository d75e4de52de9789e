"""`filter` + `map` with expressions against the same logic as hand-written plugins, in one run.

1. The expression engines the processing pack could use, on one packet-shaped record: the
   hand-written Python, simpleeval (what the pack uses, as the pack hardens it), and, when
   installed, CEL through `common-expression-language` (Rust), `cel-python` and JMESPath
   (no arithmetic: the filter only). Per evaluation, best of 5.
2. Graphs in the real runtime, `synthetic -> filter -> map -> null` with expressions, against
   `synthetic -> hand filter -> hand map -> null` (bench/_processing_hand.py) and
   `synthetic -> passthrough -> passthrough -> null` (what the runtime itself costs):
   packets/s, best of 3, and the ratio expression / hand (goal: >= 0.5x).

Run: .venv/bin/python bench/bench_processing_expr.py [--packets N]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_of

FILTER = 'payload.value > 20 and kind == "sensor"'
MAP = "payload.value * 1.8 + 32"
RECORD: dict[str, Any] = {
    "payload": {"value": 21.5, "unit": "celsius", "site": "north", "line": 3},
    "kind": "sensor",
    "source_id": "boiler-1",
    "seq": 7,
}
EVALUATIONS = 50_000


def per_call_us(fn: Callable[[], object]) -> float:
    def loop() -> None:
        for _ in range(EVALUATIONS):
            fn()

    return best_of(loop) / EVALUATIONS * 1e6


def engines() -> list[tuple[str, float, float | None]]:
    """(engine, filter µs, map µs or None) for each engine that is installed."""
    rows: list[tuple[str, float, float | None]] = []
    payload = RECORD["payload"]
    rows.append(
        (
            "hand-written Python",
            per_call_us(lambda: payload["value"] > 20 and RECORD["kind"] == "sensor"),
            per_call_us(lambda: payload["value"] * 1.8 + 32),
        )
    )
    if importlib.util.find_spec("schnitzel_plugins") is not None:
        from schnitzel.contract import StreamPacket
        from schnitzel_plugins.processing.expressions import compile_expression

        packet = StreamPacket.new("sensor", "boiler-1", 7, payload)
        condition, value = compile_expression(FILTER), compile_expression(MAP)
        rows.append(
            (
                "simpleeval, hardened (the pack)",
                per_call_us(lambda: condition.evaluate(packet)),
                per_call_us(lambda: value.evaluate(packet)),
            )
        )
    if importlib.util.find_spec("simpleeval") is not None:
        import simpleeval

        evaluator = simpleeval.SimpleEval(names=RECORD)
        f_tree, m_tree = evaluator.parse(FILTER), evaluator.parse(MAP)
        rows.append(
            (
                "simpleeval, as shipped",
                per_call_us(lambda: evaluator.eval(FILTER, previously_parsed=f_tree)),
                per_call_us(lambda: evaluator.eval(MAP, previously_parsed=m_tree)),
            )
        )
    if importlib.util.find_spec("cel") is not None:
        import cel

        f_program = cel.compile('payload.value > 20.0 && kind == "sensor"')
        m_program = cel.compile("payload.value * 1.8 + 32.0")
        rows.append(
            (
                "CEL, common-expression-language",
                per_call_us(lambda: f_program.execute(RECORD)),
                per_call_us(lambda: m_program.execute(RECORD)),
            )
        )
    if importlib.util.find_spec("celpy") is not None:
        import celpy

        environment = celpy.Environment()
        f_cel = environment.program(environment.compile('payload.value > 20.0 && kind == "sensor"'))
        m_cel = environment.program(environment.compile("payload.value * 1.8 + 32.0"))
        rows.append(
            (
                "CEL, cel-python (incl. conversion)",
                per_call_us(lambda: f_cel.evaluate(celpy.json_to_cel(RECORD))),
                per_call_us(lambda: m_cel.evaluate(celpy.json_to_cel(RECORD))),
            )
        )
    if importlib.util.find_spec("jmespath") is not None:
        import jmespath

        expression = jmespath.compile("payload.value > `20` && kind == 'sensor'")
        rows.append(
            ("JMESPath (no arithmetic)", per_call_us(lambda: expression.search(RECORD)), None)
        )
    return rows


def graph_text(filter_node: str, map_node: str, count: int) -> str:
    return f"""version: 2
runtime: {{allow_modules: [_processing_hand]}}
nodes:
  - {{id: src, kind: source, plugin: synthetic,
     config: {{count: {count}, payload: {{value: 21.5, unit: celsius, site: north, line: 3}}}}}}
  - {{id: f, kind: transform, {filter_node}}}
  - {{id: m, kind: transform, {map_node}}}
  - {{id: out, kind: sink, plugin: "null"}}
edges: [{{from: src, to: f}}, {{from: f, to: m}}, {{from: m, to: out}}]
"""


GRAPHS = {
    "expressions": (
        f"plugin: filter, config: {{condition: '{FILTER}'}}",
        f"plugin: map, config: {{set: {{fahrenheit: '{MAP}'}}, rename: {{value: celsius}}}}",
    ),
    "hand-written": ("plugin: '_processing_hand:HandFilter'", "plugin: '_processing_hand:HandMap'"),
    "passthrough": ("plugin: passthrough", "plugin: passthrough"),
}


def graph_rates(count: int) -> dict[str, float]:
    """Packets/s through each graph, best of 3, the graphs interleaved."""
    from schnitzel.runtime import Runtime
    from schnitzel.validate.validator import validate_text

    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        graphs = {}
        for name, (filter_node, map_node) in GRAPHS.items():
            path = root / f"{name}.yaml"
            text = graph_text(filter_node, map_node, count)
            path.write_text(text)
            result = validate_text(text, source=str(path), path=path)
            assert result.graph is not None, [p.render() for p in result.report.problems]
            graphs[name] = result.graph
        for _ in range(3):
            for name, graph in graphs.items():
                runtime = Runtime(graph, state_dir=root / "state")
                start = time.perf_counter()
                report = asyncio.run(runtime.run())
                elapsed = time.perf_counter() - start
                assert report["totals"]["delivered"] == count, report["totals"]
                best[name] = max(best.get(name, 0.0), count / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--engines-only", action="store_true", help="skip the graph runs")
    args = parser.parse_args()
    print(f"1. one evaluation, µs (best of 5 x {EVALUATIONS:,})")
    print(f"   filter: {FILTER}\n   map:    {MAP}")
    for engine, filter_us, map_us in engines():
        shown = f"{map_us:7.2f}" if map_us is not None else "      -"
        print(f"   {engine:36s} filter {filter_us:7.2f}   map {shown}")
    if args.engines_only:
        return
    print(f"\n2. synthetic -> filter -> map -> null, {args.packets:,} packets, best of 3")
    rates = graph_rates(args.packets)
    for name, rate in rates.items():
        print(f"   {name:14s} {rate:10,.0f} packets/s  {1e6 / rate:6.2f} µs/packet")
    expr, hand = rates["expressions"], rates["hand-written"]
    print(f"   expressions / hand-written: {expr / hand:.2f}x (goal >= 0.5x)")
    print(f"   an expression pair costs {1e6 / expr - 1e6 / hand:.2f} µs/packet over hand code")


if __name__ == "__main__":
    main()
