"""cet: Context Engineering Transformers."""

__version__ = "0.1.0"
