"""Generative bundles: a causal LM's spec parsed, its folder carried and verified (packaging), and its generation
priced on a target (:mod:`packager.estimate.price.generation`)."""

from packager.generate.package import PROFILE_NAME, GenerativePackageResult, package_generative, verify_generation
from packager.generate.spec import GenerativeSpecIn, is_generative_spec, parse_generative

__all__ = ["PROFILE_NAME", "GenerativePackageResult", "GenerativeSpecIn", "is_generative_spec", "package_generative",
           "parse_generative", "verify_generation"]
