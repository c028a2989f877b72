"""One module per ``suite`` sub-command; each exposes ``register(subparsers)``."""
