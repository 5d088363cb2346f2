"""The one exception hierarchy of fus.

Every error that bad input can cause is raised as a subclass of :class:`FusError`, and its
message names the parameter, file or DICOM tag concerned and the value that was found, so a user
can fix the input without reading a traceback from deep inside a library.

The classes also derive from the matching built-in exception (``ValueError``, ``RuntimeError``,
``OSError``) so that generic ``except ValueError`` handlers keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "FusError",
    "InvalidParameterError",
    "BackendError",
    "KernelLaunchError",
    "BackendUnavailableError",
    "KernelBuildError",
    "DataError",
    "DicomError",
    "SafetyError",
]


class FusError(Exception):
    """Base class of every error raised on purpose by fus."""


class InvalidParameterError(FusError, ValueError):
    """A parameter or array given to a fus function is out of its allowed range, shape or dtype.

    Parameters
    ----------
    name : str
        Name of the offending parameter, as the user spelt it.
    value : object
        The value that was found (or a short description of it, e.g. a shape or dtype).
    reason : str
        What is wrong and, where possible, what is expected.
    """

    def __init__(self, name: str, value: Any, reason: str) -> None:
        self.name = name
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {name}={value!r}: {reason}")


class BackendError(FusError, RuntimeError):
    """A compute backend (CPU library or CUDA) cannot do what was asked."""


class BackendUnavailableError(BackendError):
    """The requested backend cannot be used on this machine; the message says why."""


class KernelBuildError(BackendError):
    """A kernel source failed to compile or the compiled CPU library is missing or stale."""


class KernelLaunchError(BackendError):
    """A kernel launch failed on the device (or the emulated device): the message says why."""


class DataError(FusError, ValueError):
    """An input file is unreadable, malformed or inconsistent.

    Parameters
    ----------
    message : str
        What is wrong, including the value found.
    path : str or Path, optional
        The file concerned.
    tag : str, optional
        The DICOM tag or file field concerned, e.g. ``"(0018,0081) EchoTime"``.
    """

    def __init__(self, message: str, path: str | Path | None = None, tag: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.tag = tag
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if tag is not None:
            parts.append(tag)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DicomError(DataError):
    """A DICOM file or series cannot be turned into images that fus trusts."""


class SafetyError(FusError, RuntimeError):
    """A safety interlock refused to proceed; the message records why."""
