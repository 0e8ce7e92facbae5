"""Data: sources (digits, npz, tfds), preprocessing (normalisation, both ZCAs), sampling.

Everything here runs on the host before compilation, except ``sample_class_balanced``,
which runs inside the jitted distillation step.
"""

from jaxdd.data.preprocess import KNOWN_STATS
from jaxdd.data.preprocess import ZCA
from jaxdd.data.preprocess import ZCA_MODES
from jaxdd.data.preprocess import denormalize
from jaxdd.data.preprocess import normalize
from jaxdd.data.preprocess import zca_apply
from jaxdd.data.preprocess import zca_fit_krr
from jaxdd.data.preprocess import zca_fit_raw
from jaxdd.data.preprocess import zca_invert
from jaxdd.data.sampling import ClassIndex
from jaxdd.data.sampling import build_class_index
from jaxdd.data.sampling import sample_class_balanced
from jaxdd.data.sampling import select_real_init
from jaxdd.data.sampling import select_real_init_filtered
from jaxdd.data.sources import Dataset
from jaxdd.data.sources import check_ipc
from jaxdd.data.sources import load_dataset
from jaxdd.data.sources import load_from_config
from jaxdd.data.sources import validate_arrays

__all__ = [
    'KNOWN_STATS', 'ZCA', 'ZCA_MODES', 'denormalize', 'normalize', 'zca_apply',
    'zca_fit_krr', 'zca_fit_raw', 'zca_invert', 'ClassIndex', 'build_class_index',
    'sample_class_balanced', 'select_real_init', 'select_real_init_filtered', 'Dataset',
    'check_ipc', 'load_dataset', 'load_from_config', 'validate_arrays',
]
