"""Running a graph from a command line, shared by both front ends (`schnitzel` in
`schnitzel.cli` and `schnitzel-tui`): the run options, validating the graph argument and
printing its problems, the event loop with its signals, the control socket and metrics
endpoint served beside a run, the report written, exit codes, output helpers.

It sits below `schnitzel.cli` and `schnitzel_tui` so neither imports the other
(docs/architecture.md, "Floors")."""
