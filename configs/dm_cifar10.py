r"""DM on CIFAR-10 (Zhao & Bilen, WACV 2023; docs/methods.md §1 DM). IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/dm_cifar10.py:10        # paper settings, tfds
    python -m jaxdd.launch --config=configs/dm_cifar10.py:ipc=10,steps=200 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz --config.eval.epochs=300

jaxdd, 2 CPU cores (AMD EPYC), the second command: 44.86 ± 0.40 % vs 31.69 ± 0.52 %
for a random real subset (5 seeds); the paper's 20k iterations are about 9 hours here.
Paper: 26.0 % (IPC 1), 48.9 % (IPC 10), 63.0 % (IPC 50), ConvNet-3, 20k iterations.
Results and experiment log (and the offline CIFAR-10 npz): docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=20000, runlocal=False)
  return matching.dm_config('tfds:cifar10', arg.ipc, arg.steps, arg.runlocal)
