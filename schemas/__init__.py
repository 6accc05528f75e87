"""The data contracts, declared as data: see model.py for the vocabulary."""

from .datasets import CADENCE_ZH, CADENCES, DATASETS, FLAGS, PROGRAM_ALIASES, PROGRAMS, ROLL, SOURCES, dataset
from .model import Column, Dataset, Kind

__all__ = [
    "CADENCES",
    "CADENCE_ZH",
    "DATASETS",
    "FLAGS",
    "PROGRAMS",
    "PROGRAM_ALIASES",
    "ROLL",
    "SOURCES",
    "Column",
    "Dataset",
    "Kind",
    "dataset",
]
