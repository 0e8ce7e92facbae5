r"""SRe2L (docs/methods.md §1 SRe2L) on scikit-learn's 8x8 digits, sized for 2 CPU cores.
IPC by argument.

    python -m jaxdd.launch --config=configs/sre2l_digits.py:10

jaxdd, 2 CPU cores (AMD EPYC), that command: 96.48 ± 0.77 % vs the random subset under the
same relabel 97.58 ± 0.21 % (teacher 97.53 %): the relabel protocol saturates on digits.
Paper: no digits setting (CIFAR-10 ResNet-18: 27.2 %).
Results and experiment log: docs/results/sre.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import sre


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=300, epochs=300, runlocal=False)
  return sre.small_config('sre2l', 'digits', arg.ipc, arg.runlocal, arg.iterations,
                          arg.epochs)
