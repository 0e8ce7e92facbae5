r"""FRePo on CIFAR-10 (Zhou, Nezhadarya & Ba, NeurIPS 2022; docs/methods.md §1 FRePo;
yongchao97/FRePo). IPC by argument.

    python -m jaxdd.launch --config=configs/frepo_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run: the reference takes 500k steps).
Paper (Table 1, ConvNet): 46.8 % (IPC 1), 65.5 % (IPC 10), 71.7 % (IPC 50).
Results and experiment log: docs/results/kernel.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import kernel


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=500000, runlocal=False)
  return kernel.frepo_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
