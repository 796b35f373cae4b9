"""Deprecated alias of :mod:`e2e_recon.data.fetching.download`, kept for one release.

Import from ``e2e_recon.data.fetching.download`` instead; this module will be removed.
"""

import warnings

from e2e_recon.data.fetching.download import *  # noqa: F403

warnings.warn(
    "e2e_recon.data.download is deprecated and will be removed in the next release: "
    "import from e2e_recon.data.fetching.download instead",
    DeprecationWarning,
    stacklevel=2,
)
