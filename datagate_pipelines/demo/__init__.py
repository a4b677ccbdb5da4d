"""`datagate demo`: simulators, a demo portal, sync, billing, export, a summary, then the UI."""
