"""Generative members: a causal language model answering one prompt per test row, budgeted to the deadline
(engines, the time bank with early agreement, the file run, the evaluation-API predictor). docs/spec.md,
"Generative models"."""

from runtime.generate.answers import DEFAULT_EXTRACTOR, Extractor, Vote
from runtime.generate.budget import Allowance, GenCosts, TimeBank
from runtime.generate.engines import Engine, Generation, available_engines, choose_engine, load_engine
from runtime.generate.filerun import GenerateOptions, is_generative, run_generation
from runtime.generate.report import GenerationReport
from runtime.generate.solve import ItemReport, Sampling, solve_item, solve_items

__all__ = ["DEFAULT_EXTRACTOR", "Allowance", "Engine", "Extractor", "GenCosts", "GenerateOptions", "Generation",
           "GenerationReport", "ItemReport", "Sampling", "TimeBank", "Vote", "available_engines", "choose_engine",
           "is_generative", "load_engine", "run_generation", "solve_item", "solve_items"]
