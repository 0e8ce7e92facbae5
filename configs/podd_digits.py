r"""PoDD on scikit-learn's 8x8 digits, sized for 2 CPU cores (docs/methods.md §2 PoDD).

    python -m jaxdd.launch --config=configs/podd_digits.py:ipc=0.5,steps=1000 \
        --config.select.every=0

jaxdd, 2 CPU cores (AMD EPYC), that command: 77.47 ± 1.93 % vs 65.00 ± 0.71 % for a random
real subset at IPC 1 (5 seeds, same ConvNet-2). At 1 IPC over three seeds PoDD on its 5×2
class tiles is level with RaT-BPTT (87.20 ± 2.17 % vs 87.00 ± 1.55 %); overlapping
patches lose.
Paper: no digits setting (CIFAR-10: 59.1 % at IPC 1, 49.5 % at 0.5).
Results and experiment log: docs/results/podd.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import unrolled


def get_config(arg=None):
  arg = parse_arg(arg, ipc=0.5, steps=500, runlocal=False)
  return unrolled.podd_cpu_config('digits', arg.ipc, arg.steps, arg.runlocal)
