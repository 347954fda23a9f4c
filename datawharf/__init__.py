"""DataWharf: a privacy-preserving computation gateway for data exchanges."""

__version__ = "0.1.0"
