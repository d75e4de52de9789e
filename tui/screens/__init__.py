"""The console's screens: thin, each composing widgets and passing them snapshots."""
