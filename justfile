# schnitzel tasks. `just --list` shows them. Every recipe sets up what it needs first.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
python := venv / "bin/python"
# Every version of `.[dev]` (and the build backend) pinned with hashes; `just lock` refreshes it.
lock := "requirements/dev.lock"
sudo := if `id -u` == "0" { "" } else { "sudo " }
export PIP_DISABLE_PIP_VERSION_CHECK := "1"

default:
    @just --list

# At the versions (and hashes) of the lock; schnitzel itself goes on top without touching them.
# Create the virtual environment and install schnitzel with its dev and test extras.
setup:
    test -x {{python}} || python3 -m venv {{venv}}
    {{python}} -m pip install --quiet --require-hashes --requirement {{lock}}
    {{python}} -m pip install --quiet --no-deps --no-build-isolation --editable .

# The newest versions pyproject.toml's ranges allow, for Python 3.11 on Linux. Run it after
# changing a dependency in pyproject.toml, then `just setup` and the tests.
# Refresh requirements/dev.lock (every package of .[dev], pinned, with hashes).
lock:
    test -x {{python}} || python3 -m venv {{venv}}
    {{python}} -m pip install --quiet 'uv>=0.5'
    {{venv}}/bin/uv pip compile pyproject.toml requirements/build.in --extra dev --upgrade \
        --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
        --custom-compile-command 'just lock' --quiet --output-file {{lock}}

# It starts from a clean slate: what earlier runs left in graphs/out/ and graphs/state/ goes.
# The main demo: demo.yaml with its report, the feedback loop, the camera, then the console (q quits).
demo: setup clean
    {{venv}}/bin/schnitzel validate graphs/demo.yaml
    @echo
    {{venv}}/bin/schnitzel run graphs/demo.yaml --report-json -
    @echo
    {{venv}}/bin/schnitzel run graphs/feedback.yaml
    @tail -n 1 graphs/out/feedback.jsonl
    @echo
    {{python}} graphs/vision/make_scene.py
    {{venv}}/bin/schnitzel run graphs/camera.yaml
    @echo "camera events: graphs/out/camera-events.jsonl, best snapshots: graphs/out/snapshots/"
    @echo
    @if [ -t 0 ] && [ -t 2 ]; then {{just_executable()}} console; else echo "no terminal here: run \`.venv/bin/just console\` in one to see the console"; fi

# It starts without the backlog and archive of the last run. Its uplink is down by design, so
# the run ends degraded: --allow-degraded keeps that from failing the recipe.
# The console on graphs/console.yaml: live graph, queues, drops, a durable backlog (q quits).
console: setup
    rm -f graphs/state/console-uplink.db* graphs/out/console*.jsonl
    {{venv}}/bin/schnitzel-tui graphs/console.yaml --allow-degraded

# It needs 127.0.0.1:4222 free; everything it writes is under graphs/state/work-sharing/.
# Work sharing over NATS JetStream: a nats-server, the edge publisher and two workers (docs/transports.md).
work-sharing: setup
    {{python}} graphs/work_sharing.py

# Remove what the example graphs left behind: files (graphs/out/), durable backlogs (graphs/state/).
clean:
    rm -rf graphs/out graphs/state

# tmux, for the console's real-terminal test (installed with apt-get where it is missing).
terminal-tools:
    @command -v tmux >/dev/null || { {{sudo}}apt-get update -qq && {{sudo}}apt-get install -y -qq tmux >/dev/null; } || echo "tmux could not be installed: the console's terminal test will be skipped"

# Two workers (pytest-xdist): many tests wait on processes, disks and sockets, so two keep
# a two-core CI box busy even while something else holds a core (docs/architecture.md, Tests).
# Lint, check formatting, type-check, and run the whole test suite (all but the soak repeats).
test: setup lint typecheck terminal-tools
    {{python}} -m pytest -q -n 2 -m "not soak" --durations=15

# The tests without the slow integration ones (outages, kill -9, the real terminal): the edit-test loop.
test-fast: setup
    {{python}} -m pytest -q -n 2 -m "not slow and not soak"

# The longer repeats of model tests `just test` runs at their CI size (hypothesis examples).
test-soak: setup
    {{python}} -m pytest -q -n 2 -m soak

# CI keeps a subset on uvloop in every run (tests/runtime/test_event_loop.py); this runs more.
# The runtime, console, control and server-backed tests with their own event loops on uvloop.
test-uvloop: setup terminal-tools
    SCHNITZEL_LOOP=uvloop {{python}} -m pytest -q -n 2 -m "not soak" tests/runtime tests/tui tests/control tests/http tests/sensors tests/transports

# ruff lint and format check (no changes made), and the package floors (import-linter).
lint: setup
    {{venv}}/bin/ruff check .
    {{venv}}/bin/ruff format --check .
    {{venv}}/bin/lint-imports --no-cache

# mypy over schnitzel/, tui/ and plugins/ ([tool.mypy] in pyproject.toml).
typecheck: setup
    {{python}} -m mypy

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
    {{python}} bench/bench_pipeline.py
    {{python}} bench/bench_durable.py
    {{python}} bench/bench_console.py
    {{python}} bench/bench_control.py
