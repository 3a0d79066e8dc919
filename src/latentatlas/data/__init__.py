"""Data: the registry of named sources, strict file readers, the data set type and the data spec of a run.

Every source returns a :class:`Dataset` of uint8 images (N, H, W) with integer labels and a train/test split;
:func:`load_dataset` takes a name or a path, and a :class:`DataSpec` (a run's ``data``, ``image_size`` and
``transforms`` settings) derives a data set reproducibly.
"""

from .dataset import Dataset, check_pixels
from .readers import load_idx_folder, load_image_folder, load_npy_folder, load_npz, parse_idx, read_idx
from .sources import (FashionMNIST, MNIST, SOURCES, available_datasets, cache_dir, data_reference, load_dataset)
from .spec import TRANSFORMS, DataSpec, Transform, parse_transform

__all__ = ["MNIST", "SOURCES", "TRANSFORMS", "DataSpec", "Dataset", "FashionMNIST", "Transform", "parse_transform",
           "available_datasets", "cache_dir", "check_pixels", "data_reference", "load_dataset", "load_idx_folder",
           "load_image_folder", "load_npy_folder", "load_npz", "parse_idx", "read_idx"]
