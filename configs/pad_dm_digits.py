r"""PAD's two modules under DM on scikit-learn's digits (PAD appendix, Tables 6b and 7b):
configs/quickstart.py with PAD's CIFAR-10 IPC 10 ratios (configs/pad_dm_cifar10.py).

    python -m jaxdd.launch --config=configs/pad_dm_digits.py
    python -m jaxdd.launch --config=configs/pad_dm_digits.py:fiex_only   # or fiem_only

jaxdd, 2 CPU cores (AMD EPYC), 5 seeds (300-epoch DSA evaluation): both modules 89.12 ±
0.88 %, ``fiex_only`` 89.07 ± 1.09 %, ``fiem_only`` 90.55 ± 1.07 %; plain DM (the
quickstart) 90.38 ± 0.98 %, random subset 87.97 ± 0.50 %.
Paper: CIFAR-10 IPC 10, DM 48.4 %: filtering 50.3 %, masking 49.5 %.
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, fiex_only=False, fiem_only=False, runlocal=False)
  c = matching.dm_quickstart_config('digits', arg.ipc, arg.runlocal)
  return matching.pad_alignment(c, table='dm', fiex=not arg.fiem_only,
                                fiem=not arg.fiex_only, runlocal=arg.runlocal)
