"""Pricing a profile on a Kaggle target: what each stage of a run will cost there.

* :mod:`.hardware`: the catalog of Kaggle's machines (peak compute, bandwidth,
  memory) and this one as ``--target local``;
* :mod:`.flops`: the FLOPs and bytes of an ONNX graph at a batch size;
* :mod:`.roofline`: a time measured here translated to a target
  (:class:`~packager.estimate.price.roofline.Estimate`, with its band);
* :mod:`.costing`: every stage of a run priced from the profile
  (:class:`~packager.estimate.price.costing.Costing`);
* :mod:`.noise`: the bands widened where the profile's repeats disagreed.

It reads the profile (:class:`runtime.profile.Profile`) that
:mod:`packager.estimate.measure` wrote; the estimate's verdict and plan are
assembled from these prices in :mod:`packager.estimate.estimator`.
"""
