r"""RaT-BPTT on CIFAR-10 (Feng, Vedantam & Kempe, ICLR 2024; docs/methods.md §1 RaT-BPTT).

    python -m jaxdd.launch --config=configs/ratbptt_cifar10.py:1 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). Settings:
fengyzpku/Simple_Dataset_Distillation (README, framework/base.py); evaluation by jaxdd's
protocol (SGD, 1000 epochs, DSA).
Paper (as quoted by PoDD, Table 2): 53.2 ± 0.7 % at IPC 1, ConvNet-3.
Results, experiment log, the reference's Adam evaluation: docs/results/unrolled.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import unrolled


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=20000, runlocal=False)
  return unrolled.ratbptt_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
