r"""DM on MNIST (Zhao & Bilen, WACV 2023; docs/methods.md §1 DM). IPC by argument.

    python -m jaxdd.launch --config=configs/dm_mnist.py:10          # paper settings, tfds
    python -m jaxdd.launch --config=configs/dm_mnist.py:ipc=10,steps=600 \
        --config.data=npz:../shared/data/mnist.npz --config.eval.epochs=300

jaxdd, 2 CPU cores (AMD EPYC), the second command: 94.84 ± 0.23 % vs 91.68 ± 0.54 %
for a random real subset of the same size (5 seeds); 18 min distillation, 10 min
evaluation.
Paper: 89.7 % (IPC 1), 97.5 % (IPC 10), 98.6 % (IPC 50), ConvNet-3, 20k iterations.
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=20000, runlocal=False)
  return matching.dm_config('tfds:mnist', arg.ipc, arg.steps, arg.runlocal)
