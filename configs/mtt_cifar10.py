r"""MTT on CIFAR-10 (Cazenavette et al., CVPR 2022; docs/methods.md §1 MTT). IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/mtt_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). Experts are trained on the first run and
cached in ``objective.experts.cache_dir``.
Paper: 46.3 % (IPC 1), 65.3 % (IPC 10), 71.6 % (IPC 50), ConvNet-3.
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=5000, runlocal=False)
  return trajectory.mtt_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
