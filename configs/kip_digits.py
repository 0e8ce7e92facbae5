r"""KIP on scikit-learn's 8x8 digits, sized for 2 CPU cores (docs/methods.md §1 KIP).

    python -m jaxdd.launch --config=configs/kip_digits.py:10

jaxdd, 2 CPU cores (AMD EPYC), that command (1000 steps): 92.53 ± 1.00 % vs 87.97 ± 0.50 %
for a random real subset (5 seeds). configs/kip_mnist.py's settings on digits.
Paper: none (KIP's MNIST numbers are kernel evaluations).
Results and experiment log: docs/results/kernel.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import kernel


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  return kernel.kip_cpu_config('digits', arg.ipc, arg.steps, arg.runlocal)
