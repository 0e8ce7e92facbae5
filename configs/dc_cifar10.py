r"""DC on CIFAR-10 (Zhao, Mopuri & Bilen, ICLR 2021; docs/methods.md §1 DC / DSA).
IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/dc_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: accuracy not yet measured; the paper-scale run needs a GPU (at IPC 10 one step took
28-33 s on 2 shared CPU cores, so the 10k steps are days).
Paper: 28.3 % (IPC 1), 44.9 % (IPC 10), 53.9 % (IPC 50), ConvNet-3.
``iterations=N`` shortens a run; ``outer_loop=O,inner_loop=I`` sets the loops (required
for an IPC outside DCrepo's table). Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  return matching.dc_config('tfds:cifar10', arg.ipc, dsa=False, iterations=arg.iterations,
                            outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                            runlocal=arg.runlocal)
