r"""EDC (docs/methods.md §2 EDC) on scikit-learn's 8x8 digits, sized for 2 CPU cores.
IPC by argument.

    python -m jaxdd.launch --config=configs/edc_digits.py:10

jaxdd, 2 CPU cores (AMD EPYC), that command: 97.80 ± 0.17 % vs the random subset under the
same relabel 97.97 ± 0.13 %: the relabel protocol saturates on digits.
Paper: no digits setting (CIFAR-10 ResNet-18: 79.1 %).
Results and experiment log: docs/results/sre.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import sre


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=75, epochs=300, runlocal=False)
  return sre.small_config('edc', 'digits', arg.ipc, arg.runlocal, arg.iterations,
                          arg.epochs)
