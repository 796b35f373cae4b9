"""The old module paths of data/ still import for one release, and each says where to go."""

from __future__ import annotations

import importlib
import sys

import pytest

from e2e_recon.data import MOVED_MODULES


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_an_old_path_reexports_the_new_module_and_warns(old: str, new: str) -> None:
    sys.modules.pop(old, None)  # a shim warns when it is first imported
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*import from {new}\b"):
        shim = importlib.import_module(old)
    module = importlib.import_module(new)
    public = getattr(module, "__all__", None) or [n for n in vars(module) if n[0] != "_"]
    assert public
    for name in public:
        assert getattr(shim, name) is getattr(module, name), f"{old}.{name}"


def test_the_old_import_lines_of_the_public_functions_still_work() -> None:
    for old in MOVED_MODULES:
        sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning):
        from e2e_recon.data.check import check_data
        from e2e_recon.data.download import DOWNLOAD_HELP, check_data_cli, download_cli
        from e2e_recon.data.importers import import_arrays, load_arrays
        from e2e_recon.data.nifti import import_nifti, is_nifti_source
    from e2e_recon.data.fetching import check, download
    from e2e_recon.data.importing import importers, nifti

    assert (check_data, download_cli, check_data_cli) == (
        check.check_data,
        download.download_cli,
        download.check_data_cli,
    )
    assert DOWNLOAD_HELP == download.DOWNLOAD_HELP
    assert (import_arrays, load_arrays) == (importers.import_arrays, importers.load_arrays)
    assert (import_nifti, is_nifti_source) == (nifti.import_nifti, nifti.is_nifti_source)
