r"""PAD on CIFAR-10 (Li et al., 2024; docs/methods.md §2 PAD). IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/pad_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). DATM's settings (configs/datm_cifar10.py)
plus PAD's EL2N-scheduled experts and the first 0 / 50 / 25 % of the parameters masked.
Paper: 47.2 % (IPC 1), 67.4 % (IPC 10), 77.0 % (IPC 50), ConvNet-3.
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=10000, runlocal=False)
  return trajectory.pad_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
