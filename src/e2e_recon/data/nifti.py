"""Deprecated alias of :mod:`e2e_recon.data.importing.nifti`, kept for one release.

Import from ``e2e_recon.data.importing.nifti`` instead; this module will be removed.
"""

import warnings

from e2e_recon.data.importing.nifti import *  # noqa: F403

warnings.warn(
    "e2e_recon.data.nifti is deprecated and will be removed in the next release: "
    "import from e2e_recon.data.importing.nifti instead",
    DeprecationWarning,
    stacklevel=2,
)
