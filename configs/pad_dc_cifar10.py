r"""PAD's two modules under DC on CIFAR-10 (PAD appendix, Tables 6a and 7a).
IPC by argument.

    python -m jaxdd.launch --config=configs/pad_dc_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

configs/dc_cifar10.py plus the real batches without each class's hardest (IPC < 100) or
easiest EL2N fraction, and the shallowest parameters out of the matched gradients;
``fiex_only``/``fiem_only`` in the argument turn the other module off; an IPC outside
DCrepo's table (e.g. 500) needs ``outer_loop=O,inner_loop=I``.
jaxdd: not measured on CIFAR-10 (a GPU run, as configs/dc_cifar10.py).
Paper (IPC 10): filtering 46.3 % vs DC's 44.7 %; masking 45.2 % vs 44.9 %.
Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  fiex_only=False, fiem_only=False, runlocal=False)
  c = matching.dc_config('tfds:cifar10', arg.ipc, dsa=False, iterations=arg.iterations,
                         outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                         runlocal=arg.runlocal)
  return matching.pad_alignment(c, table='dc', fiex=not arg.fiem_only,
                                fiem=not arg.fiex_only, runlocal=arg.runlocal)
