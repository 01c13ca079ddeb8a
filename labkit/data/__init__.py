"""``labkit.data``: datasets, samplers, the DataLoader, and named datasets (vision, text, sequences).

from labkit.data import DataLoader, load_dataset

splits = load_dataset("digits")              # {"train": ..., "test": ...}
loader = DataLoader(splits["train"], batch_size=64, shuffle=True, seed=0)
"""

from labkit.data.catalog import DatasetNotFoundError, DatasetSpec, dataset_names, load_dataset, register_dataset
from labkit.data.collate import default_collate, pad_collate
from labkit.data.dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from labkit.data.loader import DataLoader, current_generator, get_worker_info
from labkit.data.loader_workers import WorkerInfo
from labkit.data.sampler import BatchSampler, BucketBatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = [
    "BatchSampler", "BucketBatchSampler", "ConcatDataset", "DataLoader", "Dataset", "DatasetNotFoundError",
    "DatasetSpec", "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset", "TensorDataset",
    "WorkerInfo", "current_generator", "dataset_names", "default_collate", "get_worker_info", "load_dataset",
    "pad_collate", "random_split", "register_dataset",
]  # fmt: skip
