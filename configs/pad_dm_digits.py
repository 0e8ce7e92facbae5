r"""PAD's two modules under DM on scikit-learn's digits: configs/quickstart.py (DM, IPC 10,
1000 steps) with PAD's CIFAR-10 IPC 10 ratios of configs/pad_dm_cifar10.py: the 20 %
hardest images of each class (EL2N) out of the real batches, and the matched vector
every block's output without its shallowest 25 %.

    python -m jaxdd.launch --config=configs/pad_dm_digits.py
    python -m jaxdd.launch --config=configs/pad_dm_digits.py:fiex_only   # or fiem_only

jaxdd, 2 CPU cores, 5 seeds (300-epoch DSA evaluation): both modules 89.12 ± 0.88 %,
``fiex_only`` 89.07 ± 1.09 %, ``fiem_only`` 90.55 ± 1.07 %; plain DM (the quickstart)
90.38 ± 0.98 %, random subset 87.97 ± 0.50 %.
"""

import os

from jaxdd.config_utils import load_config_file, pad_alignment, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, fiex_only=False, fiem_only=False, runlocal=False)
  c = load_config_file(os.path.join(os.path.dirname(__file__), 'quickstart.py'),
                       f'ipc={arg.ipc},runlocal={arg.runlocal}')
  return pad_alignment(c, table='dm', fiex=not arg.fiem_only, fiem=not arg.fiex_only,
                       runlocal=arg.runlocal)
