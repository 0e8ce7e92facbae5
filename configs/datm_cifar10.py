r"""DATM on CIFAR-10 (Guo et al., ICLR 2024; METHODS.md §1 DATM). IPC 1 / 10 / 50.

Paper: 46.9 % (IPC 1), 66.8 % (IPC 10), 76.1 % (IPC 50), ConvNet-3.

    python -m jaxdd.launch --config=configs/datm_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). Settings (the paper's table, which the
maintainers say to follow over the configs, DATM #7): 10k iterations, syn_steps 80,
expert_epochs 2, ZCA; per IPC (1 / 10 / 50): start window [0, 4) fixed / 10 -> 20 by
iteration 1000 / 20 -> 40 by iteration 2000, lr_img 100 / 100 / 1000, lr_lr 1e-7 /
1e-5 / 1e-5, lr_y 5 / 2 / 2, skip threshold 1.1 / 1 / 1. Experts 100 x 100 epochs with
plain SGD (DATM trains them with GSAM, rho 0.01, alpha 0.3: not implemented, see
jaxdd/experts.py). Evaluation: soft cross-entropy, batch 128, learned syn_lr, 1000
epochs, DSA.
"""

from jaxdd.config_utils import datm_cifar10_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=10000, runlocal=False)
  return datm_cifar10_config('tfds:cifar10', arg.ipc, arg.steps, runlocal=arg.runlocal)
