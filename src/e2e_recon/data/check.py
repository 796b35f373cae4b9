"""Deprecated alias of :mod:`e2e_recon.data.fetching.check`, kept for one release.

Import from ``e2e_recon.data.fetching.check`` instead; this module will be removed.
"""

import warnings

from e2e_recon.data.fetching.check import *  # noqa: F403

warnings.warn(
    "e2e_recon.data.check is deprecated and will be removed in the next release: "
    "import from e2e_recon.data.fetching.check instead",
    DeprecationWarning,
    stacklevel=2,
)
