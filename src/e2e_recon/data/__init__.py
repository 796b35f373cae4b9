"""Data layer: the file formats and the training and test sets built from them.

The modules directly in this folder are the formats (BData files and their checks
before any array is read, the selection grammar, stimulus labels, images and colour,
the geometry record) and the sets (the paired dataset, its normalisation statistics and
the training sampler), plus the data home that says where files live. Two concerns have
their own rooms below: :mod:`e2e_recon.data.fetching` (downloading the public files)
and :mod:`e2e_recon.data.importing` (turning other labs' arrays and NIfTI volumes into
BData files). Import direction: these modules may import only ``errors``, ``fileio``,
``device`` and ``config`` from the rest of the package, never ``fetching`` or
``importing``, which both build on them; ``tests/test_structure.py`` checks this. The
top-level modules ``download``, ``check``, ``importers`` and ``nifti`` are deprecated
aliases of their new homes, kept for one release (:data:`MOVED_MODULES`); nothing in
the package imports them.
"""

#: Module paths that moved, each with its new home. The old path still imports, as a
#: shim that re-exports the new module and warns (``DeprecationWarning``); it goes in
#: the next release.
MOVED_MODULES: dict[str, str] = {
    "e2e_recon.data.download": "e2e_recon.data.fetching.download",
    "e2e_recon.data.check": "e2e_recon.data.fetching.check",
    "e2e_recon.data.importers": "e2e_recon.data.importing.importers",
    "e2e_recon.data.nifti": "e2e_recon.data.importing.nifti",
}
