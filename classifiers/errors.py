"""The model registry's errors, in a module of their own: the CLI's top level turns them into one-line
messages without importing skops (a second and a half) for commands that never touch a model."""

from __future__ import annotations


class RegistryError(Exception):
    """A model registry problem, phrased for the operator."""


class ModelNotFoundError(RegistryError):
    """No such version, or no active model yet."""


class CorruptModelError(RegistryError):
    """A model or metadata file exists but cannot be read."""


class UntrustedModelError(RegistryError):
    """A model file does not match its recorded hash or contains types outside the allow-list."""
