"""Fetching the public files: ``e2e-recon download`` and ``e2e-recon check-data``.

``download`` plans and runs a download target (fMRI, released models, comparator
weights, evaluation networks); ``fetch`` makes each file's transfer verified and
resumable (checksums, partial files, a record of what was verified); ``figshare`` reads
an article's file list from figshare's public API, with the last good listing as the
fallback; ``unzip`` unpacks the released model archives safely; ``check`` reports which
stimulus images of a subject are present. Import direction: these modules may import
the formats and the data home of :mod:`e2e_recon.data` (its top-level modules) and
``errors``, ``fileio``, ``device``, ``config``, never :mod:`e2e_recon.data.importing`;
the formats and sets never import from here. The one upward import, ``download`` asking
:mod:`e2e_recon.evalnets.registry` which evaluation networks exist, happens inside a
function and is listed in ``tests/test_structure.py``.
"""
