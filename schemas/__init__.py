"""The data contracts, declared as data: see model.py for the vocabulary."""

from .datasets import CADENCE_ZH, CADENCES, DATASETS, FLAGS, PROGRAMS, ROLL, SOURCES, dataset
from .model import Column, Dataset, Kind

__all__ = [
    "CADENCES",
    "CADENCE_ZH",
    "DATASETS",
    "FLAGS",
    "PROGRAMS",
    "ROLL",
    "SOURCES",
    "Column",
    "Dataset",
    "Kind",
    "dataset",
]
