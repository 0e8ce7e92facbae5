r"""RaT-BPTT on scikit-learn's 8x8 digits, sized for 2 CPU cores (docs/methods.md §1
RaT-BPTT).

    python -m jaxdd.launch --config=configs/ratbptt_digits.py:ipc=1,steps=1500

jaxdd, 2 CPU cores (AMD EPYC), that command (10 min): 85.16 ± 0.35 % vs 65.00 ± 0.71 %
for a random real subset on the same ConvNet-2 (5 seeds). configs/ratbptt_mnist.py's
settings with ConvNet-2: ConvNet-3's 2x2 instance norm makes unrolled training on 8x8
digits chaotic.
Paper: CIFAR-10 only (configs/ratbptt_cifar10.py: 53.2 % at IPC 1).
Results and experiment log: docs/results/unrolled.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import unrolled


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=500, runlocal=False)
  return unrolled.ratbptt_cpu_config('digits', arg.ipc, arg.steps, arg.runlocal)
