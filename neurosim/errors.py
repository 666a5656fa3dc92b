"""Error types. Every message names the offending field (and file) and the expected form."""
from __future__ import annotations


class NeurosimError(Exception):
    """Base class of every error neurosim raises on purpose (the CLI maps it to exit code 2)."""


class NetworkError(NeurosimError, ValueError):
    """A network, population, projection or input description is invalid.

    `field` is the dotted path of the offending field, e.g. ``projections.ee.delay``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class FileFormatError(NeurosimError, ValueError):
    """A file cannot be read as what it claims to be; names the file and the field."""

    def __init__(self, path: str, field: str, message: str) -> None:
        self.path = str(path)
        self.field = field
        where = f"{self.path}:{field}" if field else self.path
        super().__init__(f"{where}: {message}")


class BackendUnavailable(NeurosimError, RuntimeError):
    """The requested simulation backend cannot run here (missing package or device)."""


class ExportError(NeurosimError, ValueError):
    """A network (or part of it) cannot be expressed in an export target, or a peer refused it.

    `target` names the target ('nir', 'netx', 'brian2', 'lava'); `field` the offending field,
    e.g. ``populations.h.model``.
    """

    def __init__(self, target: str, field: str, message: str) -> None:
        self.target = target
        self.field = field
        self.message = message
        where = f"{target}: {field}" if field else target
        super().__init__(f"{where}: {message}")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``kill PID``, a job scheduler's stop). The neurosim command turns the
    signal into this exception, so it unwinds like Ctrl-C: every ``except KeyboardInterrupt`` and
    ``finally`` cleans up what the run created, and the command exits with 128 + 15 = 143."""
