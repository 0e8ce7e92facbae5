"""What differs between data sets in the recipes: one row per data set.

A recipe reads the row of its config's ``data`` (``dataset(data)``) instead of repeating
a data set's quirks: digits must not be mirrored, 8×8 images are too small for three
ConvNet blocks trained unrolled, CUB's images vary in size, and the CPU-sized settings
(2 cores) that jaxdd measured on the small data sets.
"""

from typing import NamedTuple

from jaxdd.errors import ConfigError

# DSA's groups without 'flip' (nor colour or cutout): a mirrored digit is another
# symbol or none, so the recipes that choose their groups per data set (MTT's and
# RaT-BPTT's CPU-sized ones) augment digits by crops, scales and rotations only. DC,
# DSA and DM keep DCrepo's groups (with flips) on every data set, as measured.
NO_FLIP_DSA = 'crop_scale_rotate'


class DataSettings(NamedTuple):
  """A data set's row. Zeros mean "jaxdd has no CPU-sized setting on this data"."""
  data: str                   # the configs' ``data`` field
  num_classes: int
  image_hw: tuple             # (height, width) the networks see, after ``resize``
  flip: bool                  # a mirrored image keeps its class
  resize: tuple | None = None   # ``data_resize``: CUB's images vary in size
  # ConvNet depth for the methods that train through an unrolled inner loop (RaT-BPTT,
  # PoDD): on 8×8 images ConvNet-3's third block instance-normalises 2×2 maps and the
  # unrolled training is chaotic (recipes/unrolled.py, ``unrolled_nets``).
  unrolled_depth: int = 3
  cpu_eval_epochs: int = 0    # the evaluation of the CPU-sized distillation configs
  # The CPU-sized squeeze -> recover -> relabel settings (recipes/sre.py,
  # ``small_config``): teacher epochs, crop padding (also the recover's roll jitter,
  # SRe2L's 4 px on 32×32 scaled to the image size) and teacher width.
  teacher_epochs: int = 0
  crop_pad: int = 4
  teacher_width: int = 64


DIGITS = DataSettings(data='digits', num_classes=10, image_hw=(8, 8), flip=False,
                      unrolled_depth=2, cpu_eval_epochs=300, teacher_epochs=30,
                      crop_pad=1)
MNIST = DataSettings(data='tfds:mnist', num_classes=10, image_hw=(28, 28), flip=False,
                     cpu_eval_epochs=300, teacher_epochs=3, crop_pad=2)
CIFAR10 = DataSettings(data='tfds:cifar10', num_classes=10, image_hw=(32, 32), flip=True,
                       teacher_epochs=10, crop_pad=4)
CIFAR100 = DataSettings(data='tfds:cifar100', num_classes=100, image_hw=(32, 32),
                        flip=True)
# CUB-200-2011 at 32×32 as PoDD and RaT-BPTT use it (tfds' ``caltech_birds2011``).
CUB = DataSettings(data='tfds:caltech_birds2011', num_classes=200, image_hw=(32, 32),
                   flip=True, resize=(32, 32))

DATASETS = {d.data: d for d in (DIGITS, MNIST, CIFAR10, CIFAR100, CUB)}


def dataset(data: str) -> DataSettings:
  """The row of ``data``; a ConfigError names the data sets that have one."""
  if data not in DATASETS:
    raise ConfigError(f'no recipe settings for data {data!r}; known: '
                      f'{", ".join(DATASETS)}')
  return DATASETS[data]


def dsa_groups(ds: DataSettings, default: str) -> str:
  """A method's DSA groups ``default`` on data that may be mirrored, else NO_FLIP_DSA."""
  return default if ds.flip else NO_FLIP_DSA


def no_flips(ds: DataSettings, *sections) -> None:
  """Sets ``dsa_strategy`` of the config ``sections`` (e.g. ``c.eval``) to NO_FLIP_DSA on
  data that must not be mirrored; leaves them as they are on the others."""
  if not ds.flip:
    for section in sections:
      section.dsa_strategy = NO_FLIP_DSA
