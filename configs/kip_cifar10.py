r"""KIP on CIFAR-10 (Nguyen, Chen & Lee, ICLR 2021 / Nguyen, Novak, Xiao & Lee, NeurIPS
2021; docs/methods.md §1 KIP; google-research kip/KIP.ipynb). IPC by argument.

    python -m jaxdd.launch --config=configs/kip_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run: the infinite-width ConvNet kernel holds a
(H·W)² covariance per image pair). Needs the ``nt`` extra.
Paper: KIP's tables report kernel (and finite-width transfer) accuracies under their own
evaluation, not jaxdd's protocol, so they are not quoted here.
Results and experiment log: docs/results/kernel.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import kernel


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=1000, runlocal=False)
  return kernel.kip_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
