# schnitzel tasks. `just --list` shows them. Every recipe sets up what it needs first.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK := "1"

default:
    @just --list

# Create the virtual environment and install schnitzel with its dev and test extras.
setup:
    test -x {{python}} || python3 -m venv {{venv}}
    {{python}} -m pip install --quiet --upgrade pip
    {{python}} -m pip install --quiet --editable '.[dev]'

# The main demo: validate graphs/demo.yaml, run it, print the JSON run report; then run the
# feedback loop (a PID controller steering a simulated plant) with its summary.
demo: setup
    {{venv}}/bin/schnitzel validate graphs/demo.yaml
    @echo
    {{venv}}/bin/schnitzel run graphs/demo.yaml --report-json -
    @echo
    {{venv}}/bin/schnitzel run graphs/feedback.yaml
    @tail -n 1 graphs/out/feedback.jsonl

# Lint, check formatting, and run the whole test suite.
test: setup lint
    {{python}} -m pytest -q

# ruff lint and format check (no changes made).
lint: setup
    {{venv}}/bin/ruff check .
    {{venv}}/bin/ruff format --check .

# Fix what ruff can fix and format the code.
fmt: setup
    {{venv}}/bin/ruff check --fix .
    {{venv}}/bin/ruff format .

# Benchmarks: each compares against a baseline in the same run and prints ratios.
bench: setup
    {{python}} bench/bench_packet.py
    {{python}} bench/bench_validate.py
    {{python}} bench/bench_startup.py
    {{python}} bench/bench_runtime.py
    {{python}} bench/bench_durable.py
