"""The second simulator family: population receptive fields over image features.

It exists as an independent check of the project simulator (``e2e_recon.sim``), so it
shares no code with it: other stimuli (:mod:`.stimuli`), another encoding model
(:mod:`.brain`), its own HDF5 writer and schedule (:mod:`.files`) and ridge calibration
(:mod:`.calibration`). A recipe tuned on one family can then be checked on the other,
and the BData reader meets files it did not write. It imports from ``e2e_recon.sim``
only :mod:`e2e_recon.sim.cohort` (subject names, folder building: no encoding model);
``tests/sim/test_prf_subject.py`` checks that.

Its presets are offered by ``e2e-recon simulate`` as ``prf-<name>`` (:mod:`.presets`).
"""
