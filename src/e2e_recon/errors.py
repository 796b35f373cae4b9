"""The project's exception types.

Every error a user can cause (a missing file, a bad value, a key typo) is raised
as one of these, with a message that names the file, key or value and says what
to do. The command line prints the message on one line and exits with code 2.
"""

from __future__ import annotations


class E2EReconError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(E2EReconError):
    """A configuration key, value or file is invalid."""


class DataError(E2EReconError):
    """Input data (BData, images, arrays) is missing, malformed or inconsistent."""


class ModelFormatError(E2EReconError):
    """A model file (.caffemodel, .prototxt, .pt) cannot be read or does not fit."""


class CheckpointError(E2EReconError):
    """A checkpoint or run directory is missing, incomplete or incompatible."""


class DownloadError(E2EReconError):
    """A download failed, or a downloaded file did not verify."""


class TrainingError(E2EReconError):
    """Training cannot continue (for example a non-finite loss)."""


class OutputError(E2EReconError):
    """An output file or folder cannot be written (disk full, read-only, no permission)."""
