r"""FRePo on scikit-learn's 8x8 digits, sized for 2 CPU cores (docs/methods.md §1 FRePo).

    python -m jaxdd.launch --config=configs/frepo_digits.py:ipc=10,steps=3000

jaxdd, 2 CPU cores (AMD EPYC), that command: 89.29 ± 0.65 % (1000 steps: 89.07 ± 0.47 %)
vs 87.97 ± 0.50 % for a random real subset (5 seeds). configs/frepo_mnist.py's settings.
Paper: no digits setting (MNIST: 98.6 %).
Results and experiment log: docs/results/kernel.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import kernel


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  return kernel.frepo_cpu_config('digits', arg.ipc, arg.steps, arg.runlocal)
