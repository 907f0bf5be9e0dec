"""Placeholder until the Triton kernel lands."""


def load():
    return None
