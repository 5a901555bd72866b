"""Labelled texts: file loaders, the on-disk dataset store and label-balanced batches."""

from tunerflow.data.csv_options import CSVOptions
from tunerflow.data.loaders import pairs_to_records, read_csv, read_jsonl, read_records
from tunerflow.data.records import Record, make_record
from tunerflow.data.sampler import LabelBalancedBatches, whole_clusters
from tunerflow.data.store import Dataset, DatasetStore

__all__ = [
    "CSVOptions",
    "Dataset",
    "DatasetStore",
    "LabelBalancedBatches",
    "Record",
    "make_record",
    "pairs_to_records",
    "read_csv",
    "read_jsonl",
    "read_records",
    "whole_clusters",
]
