"""Deprecated alias of :mod:`e2e_recon.data.importing.importers`, kept for one release.

Import from ``e2e_recon.data.importing.importers`` instead; this module will be removed.
"""

import warnings

from e2e_recon.data.importing.importers import *  # noqa: F403

warnings.warn(
    "e2e_recon.data.importers is deprecated and will be removed in the next release: "
    "import from e2e_recon.data.importing.importers instead",
    DeprecationWarning,
    stacklevel=2,
)
