"""User-facing errors: each one is reported by the CLI as one clear line, never a traceback."""


class RefereeError(Exception):
    """A mistake in what the user gave us (a file, an input, a model), not a bug."""


class ModelFormatError(RefereeError):
    """A model file is missing, corrupt, truncated or inconsistent with its manifest."""


class ModelCompileError(RefereeError):
    """A model cannot be turned into an exact integer model (unsupported layer, bound broken)."""


class InputError(RefereeError):
    """An input tensor has the wrong shape, dtype or values."""


class TraceStoreError(RefereeError):
    """A stored trace is missing or does not verify against its own commitments."""
