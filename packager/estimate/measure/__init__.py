"""Measuring a bundle here: what each member and each stage of a run cost on this machine.

* :mod:`.profile` drives the very runtime that runs on Kaggle over the public
  (or synthetic) test data and returns the bundle's profile
  (:class:`runtime.profile.Profile`, stored as ``manifest.profile``): per member
  and variant, set-up and the per-batch path at several batch sizes;
* :mod:`.textcost` measures a text member per token, over the public lengths;
* :mod:`.overheads` measures the bundle-wide stages (process start, imports and
  exit, verification, writes, checkpoints, ensembling) and runs the runtime end
  to end; :mod:`.sampling` reads, tiles and synthesises test data for them;
* :mod:`.machine` describes this machine (the profile's ``fingerprint``), and
  :mod:`.load` how busy it was meanwhile.

The profile is the input of both the estimate (:mod:`packager.estimate.price`)
and the runtime's planner. Nothing here prices: that is :mod:`packager.estimate.price`.
"""
