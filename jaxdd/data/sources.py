"""Loading labelled image data sets, validated and preprocessed, on the host.

``load_dataset(spec)`` accepts three spec strings:

* ``digits``: scikit-learn's bundled ``load_digits()`` (1797 8x8 images, values
  0..16, 10 classes; no download), scaled to [0, 1] by /16, shape [N, 8, 8, 1].
  Fixed split, independent of any random number generator: within each class, in
  the order of the bundled file, the first ``floor(0.8 * n_c)`` images are train and
  the rest test (1433 train / 364 test, 139-146 train images per class). Train and
  test keep the file order.
* ``npz:PATH``: arrays ``x_train, y_train, x_test, y_test`` and optionally
  ``classes`` (the layout of ``../shared/data``). Images are uint8 [N, H, W, C]
  (divided by 255) or float already in [0, 1]; a 3-D [N, H, W] array is grayscale
  and gets C = 1. ``num_classes = len(classes)`` if present, else max label + 1.
* ``tfds:NAME``: tensorflow-datasets (optional extra ``pip install jaxdd[tfds]``),
  splits 'train' and 'test', with ``data_dir`` and ``manual_dir`` passed through.
  Only a prepared copy is read unless ``manual_dir`` holds the archives: a missing
  one is a ``DataError`` at once that says how to provide it (``_load_tfds``).

``resize=(h, w)`` (the config's ``data_resize``) resizes every image, antialiased
bilinear; for tfds inside tf before batching, so variable-size sets (CUB-200) load.

Normalisation uses the published per-channel statistics when the tfds name or npz
file stem names a known benchmark (``preprocess.KNOWN_STATS``), else statistics
computed on the train split. Every problem is a ``DataError`` / ``ConfigError``
with a one-line message naming the data set, raised before anything is compiled.
"""

import os
import zipfile
from typing import NamedTuple, Optional

import numpy as np
import jax
from sklearn.datasets import load_digits

from jaxdd.data import preprocess
from jaxdd.errors import ConfigError, DataError, is_int

SPEC_FORMS = 'digits, npz:PATH or tfds:NAME'
DIGITS_TRAIN_FRACTION = 0.8


class Dataset(NamedTuple):
  """A preprocessed train/test pair held in host memory.

  Attributes:
    name: the spec it was loaded from, e.g. 'digits', 'npz:/path/mnist.npz'.
    x_train: float32 [N, H, W, C], preprocessed (normalised and, if asked, whitened).
    y_train: int32 [N].
    x_test: float32 [M, H, W, C], same preprocessing.
    y_test: int32 [M].
    num_classes: K.
    class_names: tuple of K str.
    mean: float32 [C] per-channel mean used for normalisation (zeros if none).
    std: float32 [C] (ones if none).
    zca: the fitted ``preprocess.ZCA``, or None.
  """
  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  class_names: tuple
  mean: np.ndarray
  std: np.ndarray
  zca: Optional[preprocess.ZCA]


class _Raw(NamedTuple):
  """What a source returns, before validation and conversion."""
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: Optional[int]       # None: max label + 1
  class_names: Optional[tuple]
  stats_key: Optional[str]         # name to look up in preprocess.KNOWN_STATS


# ----------------------------------------------------------------------------------
# Sources.
# ----------------------------------------------------------------------------------


def _load_digits() -> _Raw:
  """scikit-learn's digits with the fixed per-class 80/20 split (module docstring)."""
  bunch = load_digits()
  x = (bunch.images / 16.0).astype(np.float32)[..., None]
  y = bunch.target.astype(np.int64)
  train = np.zeros(len(y), bool)
  for c in np.unique(y):
    idx = np.flatnonzero(y == c)
    train[idx[:int(np.floor(DIGITS_TRAIN_FRACTION * len(idx)))]] = True
  names = tuple(str(c) for c in range(10))
  return _Raw(x[train], y[train], x[~train], y[~train], 10, names, None)


def _load_npz(name: str, path: str) -> _Raw:
  """Reads the plain layout x_train, y_train, x_test, y_test[, classes]."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise DataError(f'dataset {name!r}: no such file {path}')
  try:
    with np.load(path, allow_pickle=False) as f:
      if not hasattr(f, 'files'):   # a bare .npy holds one array, not the layout
        raise DataError(f'dataset {name!r}: {path} is a single array, not an npz archive')
      missing = [k for k in ('x_train', 'y_train', 'x_test', 'y_test') if k not in f.files]
      if missing:
        raise DataError(f'dataset {name!r}: {path} lacks the arrays {", ".join(missing)} '
                        f'(has {", ".join(f.files)})')
      arrays = {k: f[k] for k in ('x_train', 'y_train', 'x_test', 'y_test')}
      classes = f['classes'] if 'classes' in f.files else None
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    if isinstance(e, DataError):
      raise
    raise DataError(f'dataset {name!r}: cannot read {path} as npz: {_first_line(e)}') from e
  names = None
  if classes is not None:
    names = tuple(str(c) for c in np.atleast_1d(classes).tolist())
  stem = os.path.splitext(os.path.basename(path))[0]
  return _Raw(**arrays, num_classes=len(names) if names else None, class_names=names,
              stats_key=stem)


def _load_tfds(name: str, tfds_name: str, data_dir, manual_dir, resize=None,
               download: bool = False) -> _Raw:
  """tensorflow-datasets' 'train' and 'test' splits: uint8 [N, H, W, C] (float32 in
  [0, 1] if ``resize`` = (h, w) is given: see ``_resize_and_stack``) and labels [N].

  Without ``manual_dir`` (archives tfds builds from) or ``download`` (the config's
  ``data_download``, for a machine with internet) only a prepared copy is read:
  ``tfds.load(download=False)`` starts no download (offline, one fails only after
  minutes of retries) and its ``as_dataset`` raises at once when ``builder.data_path``
  is missing, the test ``builder.is_prepared()`` makes. Calling ``is_prepared``
  ourselves would also reject ``tfds.testing.mock_data``, whose builders never are.
  Raises ``DataError`` (unknown or unprepared; the message says how to provide it).
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConfigError(f'data={name!r} needs tensorflow-datasets, which is not installed: '
                      'pip install jaxdd[tfds]') from e
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  try:
    (train, test), info = tfds.load(
        tfds_name, split=['train', 'test'], batch_size=None if resize else -1,
        as_supervised=True, with_info=True, data_dir=data_dir,
        download=bool(manual_dir) or download,
        download_and_prepare_kwargs={'download_config': download_config})
  except AssertionError as e:   # as_dataset: "could not find data in DATA_DIR"
    raise DataError(_not_prepared_message(name, tfds_name, data_dir, e)) from e
  except ValueError as e:   # unknown name, missing split (DatasetNotFoundError is one)
    raise DataError(f'dataset {name!r}: tensorflow-datasets cannot load it: '
                    f'{_first_line(e)}') from e
  if resize:
    x_train, y_train = _resize_and_stack(tfds, train, resize)
    x_test, y_test = _resize_and_stack(tfds, test, resize)
  else:
    x_train, y_train = tfds.as_numpy(train)
    x_test, y_test = tfds.as_numpy(test)
  names = _tfds_class_names(info)
  return _Raw(x_train, y_train, x_test, y_test, len(names) if names else None, names,
              tfds_name.split(':')[0].split('/')[0])


def _not_prepared_message(name: str, tfds_name: str, data_dir, error: Exception) -> str:
  """One line: the data is not there, and the three ways to provide it."""
  base = tfds_name.split(':')[0]
  where = data_dir or "tfds' default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
  return (f'dataset {name!r}: tensorflow-datasets has no prepared copy in {where} and '
          'jaxdd downloads nothing without archives (offline, a download only fails '
          'after minutes of retries). Provide it in one of four ways: online, pass '
          '--config.data_download=true; or prepare it on a '
          f'machine with internet (tfds build {base} --data_dir=DIR), copy DIR here and '
          'pass --config.data_dir=DIR; or place its archives in a directory and pass '
          '--config.manual_dir=DIR; or save it as an npz (x_train, y_train, x_test, '
          f'y_test) and pass --config.data=npz:PATH. (tfds: {_first_line(error)})')


def _resize_and_stack(tfds, ds, size) -> tuple[np.ndarray, np.ndarray]:
  """float32 [N, h, w, C] in [0, 1] and labels [N] of an (image, label) tf.data.Dataset.

  Each image is resized to ``size`` = (h, w) by ``tf.image.resize(method='bilinear',
  antialias=True)``: a triangle filter widened by the scale factor when shrinking
  (plain bilinear with half-pixel centres when enlarging), like the PIL resize of
  PoDD's ``transforms.Resize((32, 32))`` on CUB-200 (``AsafShul/PoDD:src/data_utils.py``),
  which then rounds to uint8; this keeps float. Before batching: sizes differ.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (comes with tfds)
  size = tuple(int(v) for v in size)

  def resize(image, label):
    image = tf.image.resize(image, size, method='bilinear', antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0), label

  xs, ys = [], []
  for x, y in tfds.as_numpy(ds.map(resize).batch(1024)):
    xs.append(x)
    ys.append(y)
  if not xs:
    return np.zeros((0,) + size + (1,), np.float32), np.zeros((0,), np.int64)
  return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def _resize_host(x: np.ndarray, size) -> np.ndarray:
  """float32 [N, h, w, C] for digits/npz: ``jax.image.resize('linear', antialias=True)``,
  the same scale-and-translate triangle filter as ``_resize_and_stack``'s tf one."""
  size = tuple(int(v) for v in size)
  if x.shape[1:3] == size:
    return x
  out = jax.image.resize(x, (x.shape[0],) + size + (x.shape[3],), 'linear', antialias=True)
  return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def _check_resize(resize) -> Optional[tuple]:
  """``data_resize`` as (h, w) of positive ints; None if empty; else a ConfigError."""
  if resize is None or (isinstance(resize, (tuple, list)) and not resize):
    return None
  ok = (isinstance(resize, (tuple, list)) and len(resize) == 2
        and all(is_int(v) and v > 0 for v in resize))
  if not ok:
    raise ConfigError(f'data_resize must be (height, width) of positive integers, or '
                      f'empty / None for no resize; got {resize!r}')
  return tuple(int(v) for v in resize)


def _tfds_class_names(info) -> Optional[tuple]:
  """Names of the supervised label feature (a ClassLabel), or None."""
  try:
    label_key = info.supervised_keys[1] if info.supervised_keys else 'label'
    return tuple(str(n) for n in info.features[label_key].names)
  except (AttributeError, KeyError, TypeError, IndexError):
    return None


def _first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ----------------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------------


def _check_split(name, split, x, y):
  """Rank, length and finiteness of one split."""
  if x.ndim not in (3, 4):
    raise DataError(f'dataset {name!r}: x_{split} must be 3-D [N, H, W] or 4-D '
                    f'[N, H, W, C] images, got shape {x.shape}')
  if y.ndim != 1:
    raise DataError(f'dataset {name!r}: y_{split} must be 1-D labels [N], got shape {y.shape}')
  if len(x) != len(y):
    raise DataError(f'dataset {name!r}: x_{split} has {len(x)} images but y_{split} '
                    f'has {len(y)} labels')
  if len(x) == 0:
    raise DataError(f'dataset {name!r}: the {split} split is empty')
  if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
    raise DataError(f'dataset {name!r}: x_{split} has non-numeric dtype {x.dtype}')
  if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
    raise DataError(f'dataset {name!r}: x_{split} has non-finite pixels (NaN or inf)')


def _check_labels(name, split, y, num_classes):
  """Integer-valued labels in [0, num_classes)."""
  if not np.issubdtype(y.dtype, np.integer):
    if not (np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all()
            and (y == np.round(y)).all()):
      raise DataError(f'dataset {name!r}: y_{split} must hold integer class labels, '
                      f'got dtype {y.dtype}')
  bad = (y < 0) | (y >= num_classes)
  if bad.any():
    raise DataError(f'dataset {name!r}: y_{split} has labels outside [0, {num_classes}): '
                    f'e.g. {y[bad][0]} ({int(bad.sum())} of {len(y)})')


def validate_arrays(name, x_train, y_train, x_test, y_test, num_classes) -> None:
  """Checks a train/test pair; raises ``DataError`` naming the data set and the problem.

  Args:
    name: the data set's name for messages.
    x_train: [N, H, W] or [N, H, W, C] images, numeric.
    y_train: [N] integer labels.
    x_test: [M, ...] images of the same per-image shape (3-D counts as C = 1).
    y_test: [M] integer labels.
    num_classes: K; every label must be in [0, K) and every class needs at least one
      train image.
  """
  if int(num_classes) < 1:
    raise DataError(f'dataset {name!r}: num_classes must be at least 1, got {num_classes}')
  arrays = [np.asarray(a) for a in (x_train, y_train, x_test, y_test)]
  x_train, y_train, x_test, y_test = arrays
  _check_split(name, 'train', x_train, y_train)
  _check_split(name, 'test', x_test, y_test)
  image_shape = lambda x: x.shape[1:] if x.ndim == 4 else x.shape[1:] + (1,)
  if image_shape(x_train) != image_shape(x_test):
    raise DataError(f'dataset {name!r}: train images are {image_shape(x_train)} but test '
                    f'images are {image_shape(x_test)}')
  _check_labels(name, 'train', y_train, num_classes)
  _check_labels(name, 'test', y_test, num_classes)
  counts = np.bincount(y_train.astype(np.int64), minlength=int(num_classes))
  empty = np.flatnonzero(counts == 0)
  if len(empty):
    raise DataError(f'dataset {name!r}: class(es) {empty.tolist()[:10]} have no training '
                    'images')


def check_ipc(ds: Dataset, ipc: int) -> None:
  """Checks that every train class has at least ``ipc`` images.

  Raises:
    ConfigError: ``ipc`` is not a positive integer.
    DataError: some class of ``ds``'s train split has fewer than ``ipc`` images.
  """
  if not is_int(ipc) or ipc <= 0:
    raise ConfigError(f'ipc must be a positive integer, got {ipc!r}')
  counts = np.bincount(np.asarray(ds.y_train), minlength=ds.num_classes)
  short = np.flatnonzero(counts < ipc)
  if len(short):
    c = short[np.argmin(counts[short])]
    raise DataError(f'dataset {ds.name!r}: ipc={ipc} needs {ipc} training images per class, '
                    f'but class {c} ({ds.class_names[c]!r}) has only {counts[c]} '
                    f'({len(short)} class(es) too small)')


# ----------------------------------------------------------------------------------
# Conversion and the entry point.
# ----------------------------------------------------------------------------------


def _to_unit_float(name, split, x) -> np.ndarray:
  """uint8 -> /255; float must already be in [0, 1]; 3-D -> C = 1. float32 [N, H, W, C]."""
  if x.dtype == np.uint8:
    x = np.divide(x, np.float32(255.0), dtype=np.float32)
  elif np.issubdtype(x.dtype, np.floating):
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
      raise DataError(f'dataset {name!r}: float x_{split} must be pixels in [0, 1], got '
                      f'values in [{lo:.4g}, {hi:.4g}] (store uint8 or rescale)')
    x = x.astype(np.float32)
  else:
    raise DataError(f'dataset {name!r}: x_{split} must be uint8 or float in [0, 1], '
                    f'got dtype {x.dtype}')
  return x[..., None] if x.ndim == 3 else x


def _infer_num_classes(raw: _Raw) -> int:
  """Max label + 1 over both splits.

  Returns 1 when the labels are not finite numbers, so that validation reports them.
  """
  ys = [np.asarray(y) for y in (raw.y_train, raw.y_test)]
  if all(np.issubdtype(y.dtype, np.number) and y.size and np.isfinite(y).all() for y in ys):
    return max(int(y.max()) for y in ys + [np.zeros(1)]) + 1
  return 1


def _parse_spec(spec):
  """'digits' | 'npz:PATH' | 'tfds:NAME' -> (kind, argument); ConfigError otherwise."""
  if isinstance(spec, str):
    spec = spec.strip()
    if spec == 'digits':
      return 'digits', None
    for kind in ('npz', 'tfds'):
      if spec.startswith(kind + ':') and spec[len(kind) + 1:].strip():
        return kind, spec[len(kind) + 1:].strip()
  raise ConfigError(f'data must be one of {SPEC_FORMS}, got {spec!r}')


def load_dataset(spec: str, *, normalize: bool = True, zca: str = 'none',
                 data_dir: Optional[str] = None,
                 manual_dir: Optional[str] = None, resize=None,
                 download: bool = False) -> Dataset:
  """Loads, validates and preprocesses a data set.

  Args:
    spec: 'digits', 'npz:PATH' or 'tfds:NAME' (module docstring).
    normalize: per-channel (x - mean) / std with known or train statistics.
    zca: 'none'; 'raw' (MTT's kornia ZCA on un-normalised [0, 1] pixels, so
      ``normalize`` is ignored); or 'krr' (per-image normalisation then ZCA, after
      the mean/std normalisation). Both are fitted on train, applied to train and test.
    data_dir: tfds data directory (tfds only).
    manual_dir: tfds ``DownloadConfig.manual_dir`` for offline archives (tfds only).
    download: let tensorflow-datasets download and prepare a missing data set (the
      config's ``data_download``; off by default: offline it fails only after minutes).
    resize: (height, width) every image is resized to (the config's ``data_resize``),
      or None. tfds resizes inside tf before batching (variable-size images, e.g.
      CUB-200); digits and npz after loading, with the same antialiased bilinear filter.

  Returns:
    A ``Dataset`` with float32 [N, H, W, C] images and int32 labels.
  """
  kind, arg = _parse_spec(spec)
  preprocess.check_zca_mode(zca)
  name = spec.strip()
  resize = _check_resize(resize)
  if kind == 'digits':
    raw = _load_digits()
  elif kind == 'npz':
    raw = _load_npz(name, arg)
  else:
    raw = _load_tfds(name, arg, data_dir, manual_dir, resize, download)
  num_classes = raw.num_classes or _infer_num_classes(raw)
  validate_arrays(name, raw.x_train, raw.y_train, raw.x_test, raw.y_test, num_classes)
  x_train = _to_unit_float(name, 'train', np.asarray(raw.x_train))
  x_test = _to_unit_float(name, 'test', np.asarray(raw.x_test))
  if resize:   # tfds has resized already; a no-op then
    x_train, x_test = _resize_host(x_train, resize), _resize_host(x_test, resize)
  stats = preprocess.known_stats(raw.stats_key, x_train.shape[-1])
  x_train, x_test, mean, std, fitted = preprocess.preprocess_splits(
      x_train, x_test, stats=stats, do_normalize=normalize, zca=zca)
  names = raw.class_names or tuple(str(c) for c in range(num_classes))
  return Dataset(name, x_train, np.asarray(raw.y_train).astype(np.int32), x_test,
                 np.asarray(raw.y_test).astype(np.int32), num_classes, tuple(names),
                 mean, std, fitted)


def load_from_config(config) -> Dataset:
  """The data set a run's config names (``data``, ``zca``, ``data_dir``, ``manual_dir``,
  ``data_resize``, ``data_download``), loaded and validated on the host."""
  return load_dataset(config.data, zca=config.get('zca', 'none'),
                      data_dir=config.get('data_dir', None) or None,
                      manual_dir=config.get('manual_dir', None) or None,
                      resize=config.get('data_resize', None),
                      download=bool(config.get('data_download', False)))
