r"""PAD's two modules under DM on CIFAR-10 (PAD appendix, Tables 6b and 7b).
IPC by argument.

    python -m jaxdd.launch --config=configs/pad_dm_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

configs/dm_cifar10.py plus the real batches without each class's hardest (IPC < 100) or
easiest EL2N fraction, and every block's output matched without its shallowest part;
``fiex_only``/``fiem_only`` in the argument turn the other module off.
jaxdd: not measured on CIFAR-10 (a GPU run: 20k iterations); see
configs/pad_dm_digits.py.
Paper (IPC 10): filtering 50.3 % vs DM's 48.4 %; masking 49.5 % vs 48.9 %.
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=20000, fiex_only=False, fiem_only=False,
                  runlocal=False)
  c = matching.dm_config('tfds:cifar10', arg.ipc, arg.steps, arg.runlocal)
  return matching.pad_alignment(c, table='dm', fiex=not arg.fiem_only,
                                fiem=not arg.fiex_only, runlocal=arg.runlocal)
