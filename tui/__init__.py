"""The schnitzel console, installed as `schnitzel_tui`: a client of the control API."""
