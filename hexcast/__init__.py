"""hexcast's app layer: the CLI, the API assembly, `up` and operator tasks (the core is ``hexcast.core``)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
