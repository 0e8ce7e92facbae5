r"""DC on MNIST (Zhao, Mopuri & Bilen, ICLR 2021; docs/methods.md §1 DC / DSA).
IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/dc_mnist.py:ipc=10,iterations=20 \
        --config.data=npz:../shared/data/mnist.npz --config.eval.epochs=300 \
        --config.objective.batch_real=64 --config.parameterization.init=real

jaxdd, 2 CPU cores (AMD EPYC), that command: 96.28 ± 0.10 % vs 93.37 ± 0.17 % for a
random real subset (5 seeds); IPC 1, 300 iterations, noise init: 88.19 ± 0.50 % vs
54.27 ± 1.66 %.
Paper: 91.7 % (IPC 1), 97.4 % (IPC 10), ConvNet-3.
``iterations=N`` shortens a run; ``outer_loop=O,inner_loop=I`` sets the loops (required
for an IPC outside DCrepo's table). Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  return matching.dc_config('tfds:mnist', arg.ipc, dsa=False, iterations=arg.iterations,
                            outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                            runlocal=arg.runlocal)
