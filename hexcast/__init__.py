"""hexcast core: settings, errors, database and Redis clients, logging and the CLI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
