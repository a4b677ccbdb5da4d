"""Groups of `datagate` subcommands, each in its own module, added to the main group in cli.py."""
