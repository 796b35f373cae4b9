"""Importing other labs' layouts: ``e2e-recon import``.

``importers`` reads named arrays (``.mat``, ``.npz``, HDF5) and ``nifti`` reads NIfTI
volumes with a mask, ROIs and a table of volumes; ``layouts`` recognises how a lab
stores its training and test sets (which arrays are the test split, flat or shaped
images), ``pairing`` matches fMRI rows to stimulus images, ``source_checks`` checks the
sizes a source declares before anything is read, ``import_writer`` writes the BData
files and image folders through a staging folder, and ``import_preview`` draws the
preview image. Import direction: these modules may import the formats of
:mod:`e2e_recon.data` (its top-level modules: BData, labels, images) and ``errors``,
``fileio``, ``device``, ``config``, never :mod:`e2e_recon.data.fetching` nor anything
above the data layer; the formats and sets never import from here.
"""
