"""``labkit.data``: datasets, samplers, the DataLoader, and named datasets (vision, text, sequences)."""

from labkit.data.catalog import DatasetNotFoundError, DatasetSpec, dataset_names, load_dataset, register_dataset

__all__ = ["DatasetNotFoundError", "DatasetSpec", "dataset_names", "load_dataset", "register_dataset"]
