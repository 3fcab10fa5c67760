"""The version of xlconv: the single source pyproject.toml, ``xlconv --version`` and ``xlconv.__version__`` read."""

__version__ = "0.1.0"
