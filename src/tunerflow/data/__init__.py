"""Labelled texts: file loaders, the on-disk dataset store and label-balanced batches."""

from tunerflow.data.loaders import read_csv, read_jsonl, read_records
from tunerflow.data.records import Record, make_record
from tunerflow.data.sampler import LabelBalancedBatches, whole_clusters
from tunerflow.data.store import Dataset, DatasetStore

__all__ = [
    "Dataset",
    "DatasetStore",
    "LabelBalancedBatches",
    "Record",
    "make_record",
    "read_csv",
    "read_jsonl",
    "read_records",
    "whole_clusters",
]
