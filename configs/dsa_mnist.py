r"""DSA on MNIST (Zhao & Bilen, ICML 2021; docs/methods.md §1 DC / DSA). IPC 1 / 10 / 50.

    python -m jaxdd.launch --config=configs/dsa_mnist.py:10 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd, 2 CPU cores (AMD EPYC): IPC 1, 300 iterations, real batch 64/class, evaluation
shortened to 300 epochs (5 seeds): 85.28 ± 0.66 % vs 54.87 ± 1.24 % for a random real
subset; IPC 10, 10 iterations, same settings: 94.88 ± 0.26 % vs 91.68 ± 0.54 %.
Paper: 88.7 % (IPC 1), 97.8 % (IPC 10), ConvNet-3.
``iterations=N`` shortens a run; ``outer_loop=O,inner_loop=I`` sets the loops (required
for an IPC outside DCrepo's table). Results and experiment log: docs/results/matching.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import matching


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  return matching.dc_config('tfds:mnist', arg.ipc, dsa=True, iterations=arg.iterations,
                            outer_loop=arg.outer_loop, inner_loop=arg.inner_loop,
                            runlocal=arg.runlocal)
