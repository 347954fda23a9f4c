"""The `wharf` command and the local demo: the only package that imports every role."""
