r"""FreD + DC on MNIST (Shin, Shin & Moon, NeurIPS 2023; METHODS.md §2 FreD).

Paper: FreD+DC on MNIST not reported.

    python -m jaxdd.launch --config=configs/fred_dc_mnist.py:2                   # tfds
    python -m jaxdd.launch --config=configs/fred_dc_mnist.py:2 \
        --config.data=npz:../shared/data/mnist.npz                                # offline

jaxdd: not yet measured. Settings: those of the authors' DC script for CIFAR-10
(sdh0818/FreD DC/scripts/run_DC_FreD.sh): the unnormalised DCT with SGD lr_freq 1e3,
momentum 0.5; hard labels; real init; 1000 iterations of DC (no DSA; a fresh ConvNet-3
per iteration, real batch 256 per class, inner training plain SGD lr_net 0.01, batch
256, on all decoded instances); (outer, inner) loops by budget IPC as in
fred_dc_cifar10.py; steps = iterations·outer_loop.

msz 28 instead of their 32: FreD needs ipc·H·W/msz instances per class to be an
integer, and 784/32 = 24.5 is not (IPC 1). 28 is the divisor of 784 nearest to 32, so
28·ipc instances per class (CIFAR-10's msz 32 gives 32·ipc) for every IPC.

Evaluation: DCrepo (and FreD's copy of it) evaluates DC on MNIST with its
non-differentiable DC augmentation ('crop_scale_rotate') for 1000 epochs; jaxdd offers
DSA or nothing, and DSA (which includes crop, scale and rotate) for 1000 epochs, lr
0.01, is the closest. The IPC argument defaults to 2 (the authors' script), or 1 with
``runlocal``.
"""

import ml_collections

from jaxdd.config_utils import dc_config, parse_arg
from jaxdd.objectives.dc import DC_LOOPS

# FreD's get_loops: DCrepo's table plus its budgets 2 / 11 / 51.
LOOPS = {**DC_LOOPS, 2: (1, 1), 11: (10, 50), 51: (50, 10)}


def get_config(arg=None):
  # ipc=0 means "not given": 2 for a paper-style run, 1 for runlocal.
  arg = parse_arg(arg, ipc=0, iterations=1000, outer_loop=0, inner_loop=0,
                  runlocal=False)
  # DCrepo's DC augmentation is crop, scale and rotate; DSA's groups of those names
  # stand in for it (DSA's ranges: scale 1/1.2-1.2, rotation ±15°, not ±45°).
  c = dc_config(data='tfds:mnist', ipc=arg.ipc or (1 if arg.runlocal else 2), dsa=False,
                init='real', iterations=arg.iterations, eval_dsa=True, eval_epochs=1000,
                eval_dsa_strategy='crop_scale_rotate',
                outer_loop=arg.outer_loop, inner_loop=arg.inner_loop, loops=LOOPS,
                runlocal=arg.runlocal)
  # The authors' unnormalised DCT and their DC lr.
  c.parameterization = ml_collections.ConfigDict(
      dict(name='fred', msz=28, dct_norm=None, init='real', learn_labels=False))
  c.optim.images.lr = 1e3
  if arg.runlocal:
    # msz 49: 16 instances per class, what the 16-image stand-in data can initialise.
    c.parameterization.msz = 49
  return c
