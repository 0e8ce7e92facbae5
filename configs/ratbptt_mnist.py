r"""RaT-BPTT on MNIST, sized for a CPU (docs/methods.md §1 RaT-BPTT; the reference has no
MNIST setting).

    python -m jaxdd.launch --config=configs/ratbptt_mnist.py:ipc=1,steps=200 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd, 2 CPU cores (AMD EPYC), that command (28 min, cores partly shared): 77.12 ± 1.51 %
vs 54.16 ± 1.70 % for a random real subset (5 seeds).
Paper: no MNIST setting (CIFAR-10: configs/ratbptt_cifar10.py).
Results and experiment log: docs/results/unrolled.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import unrolled


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=500, runlocal=False)
  return unrolled.ratbptt_cpu_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
