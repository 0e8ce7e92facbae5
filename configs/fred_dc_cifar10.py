r"""FreD + DC on CIFAR-10 (Shin, Shin & Moon, NeurIPS 2023; METHODS.md §2 FreD).

Paper: FreD+DC numbers are not quoted here (not checked against the paper).

    python -m jaxdd.launch --config=configs/fred_dc_cifar10.py:2                 # tfds
    python ../shared/data/decode_jpeg_npz.py ../shared/data/cifar10_jpeg_bytes.npz \
        ~/.cache/jaxdd/cifar10.npz                                                # offline
    python -m jaxdd.launch --config=configs/fred_dc_cifar10.py:2 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not yet measured. Settings (sdh0818/FreD DC/main_DC_FreD.py,
DC/scripts/run_DC_FreD.sh): msz 32 frequency positions per class (shared by the three
channels), so ipc·1024/32 = 32·ipc instances per class; the authors' unnormalised DCT
with SGD lr_freq 1e3, momentum 0.5; hard labels; real init; 1000 iterations of DC
(no DSA; a fresh ConvNet-3 per iteration, real batch 256 per class, inner training
plain SGD lr_net 0.01, batch 256, on all decoded instances). (outer, inner) loops by
budget IPC: DCrepo's get_loops plus the entries FreD adds (2 -> (1, 1), 11 -> (10, 50),
51 -> (50, 10), read from the FreD repository's DM/utils.py; its DC/utils.py was not
available, assumed the same); steps = iterations·outer_loop. Evaluation as DCrepo's for
DC on CIFAR-10: 300 epochs without augmentation, lr 0.01. The IPC argument defaults to
2 (the authors' script), or 1 with ``runlocal``.
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
  c = dc_config(data='tfds:cifar10', ipc=arg.ipc or (1 if arg.runlocal else 2), dsa=False,
                init='real', iterations=arg.iterations, eval_dsa=False, eval_epochs=300,
                outer_loop=arg.outer_loop, inner_loop=arg.inner_loop, loops=LOOPS,
                runlocal=arg.runlocal)
  # The authors' unnormalised DCT and their lr (the orthonormal-equivalent lr is about
  # 1e3 / (2·32 · 2·32) ≈ 0.24 on most coefficients; see fred_dm_cifar10.py).
  c.parameterization = ml_collections.ConfigDict(
      dict(name='fred', msz=32, dct_norm=None, init='real', learn_labels=False))
  c.optim.images.lr = 1e3
  if arg.runlocal:
    # msz 64: 16 instances per class, what the 16-image stand-in data can initialise.
    c.parameterization.msz = 64
  return c
