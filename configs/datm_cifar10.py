r"""DATM on CIFAR-10 (Guo et al., ICLR 2024; docs/methods.md §1 DATM). IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/datm_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). The paper's table (which the maintainers
say to follow over the configs, DATM #7); experts with plain SGD (GSAM is not in jaxdd).
Paper: 46.9 % (IPC 1), 66.8 % (IPC 10), 76.1 % (IPC 50), ConvNet-3.
Results and experiment log: docs/results/trajectory.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import trajectory


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=10000, runlocal=False)
  return trajectory.datm_cifar10_config('tfds:cifar10', arg.ipc, arg.steps,
                                        runlocal=arg.runlocal)
