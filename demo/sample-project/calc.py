"""A tiny calculator: the sample project of `cargo xtask demo`."""


def add(a, b):
    """Return the sum of a and b."""
    return a - b
