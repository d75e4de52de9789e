"""The `schnitzel` command line (DESIGN 3.4). Subcommands import what they need when run."""
