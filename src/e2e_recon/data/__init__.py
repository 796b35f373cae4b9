"""Data layer: the file formats and the training and test sets built from them.

The modules directly in this folder are the formats (BData files and their checks
before any array is read, the selection grammar, stimulus labels, images and colour,
the geometry record) and the sets (the paired dataset, its normalisation statistics and
the training sampler), plus the data home that says where files live. Two concerns have
their own rooms below: :mod:`e2e_recon.data.fetching` (downloading the public files)
and :mod:`e2e_recon.data.importing` (turning other labs' arrays and NIfTI volumes into
BData files). Import direction: these modules import only ``errors`` and ``fileio`` from
the rest of the package and never ``fetching`` or ``importing``, which both build on
them; ``tests/test_structure.py`` checks this.
"""
