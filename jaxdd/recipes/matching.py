"""Recipes of the matching methods: DC, DSA, DM, and FreD and PAD's modules under them.

DC (Zhao, Mopuri & Bilen, ICLR 2021), DSA (Zhao & Bilen, ICML 2021) and DM (Zhao &
Bilen, WACV 2023) at the settings of the authors' code (DCrepo main.py, main_DM.py,
utils.py; docs/methods.md §1 DC / DSA, DM); FreD (Shin, Shin & Moon, NeurIPS 2023;
sdh0818/FreD) replaces their pixels by masked DCT coefficients (docs/methods.md §2 FreD);
PAD's appendix (Li et al., 2024, Tables 6-7) filters their real batches and matched
vectors. Results and experiment logs: docs/results/matching.md.
"""

import os
import tempfile
from typing import NamedTuple

import ml_collections

from jaxdd.augment import dsa as dsa_lib
from jaxdd.config_utils import base_config, shrink_for_runlocal
from jaxdd.objectives.dc import DC_LOOPS, dc_loops
from jaxdd.recipes.datasets import dataset

# DCrepo's get_daparam: DC evaluates MNIST with its (non-differentiable) crop, scale and
# rotate augmentation, other data without augmentation. jaxdd stands in DSA's groups of
# those names (DSA's ranges: scale 1/1.2-1.2, rotation ±15°, not ±45°).
DC_EVAL_AUGMENT = {'tfds:mnist': 'crop_scale_rotate'}

# FreD's get_loops: DCrepo's table plus its budgets 2 / 11 / 51 (read from the FreD
# repository's DM/utils.py; its DC/utils.py was not available, assumed the same). The
# entries are (outer_loop, inner_loop), the format of objectives/dc.py's DC_LOOPS.
FRED_LOOPS = {**DC_LOOPS, 2: (1, 1), 11: (10, 50), 51: (50, 10)}


def dm_config(data: str, ipc: int, steps: int, runlocal: bool = False
              ) -> ml_collections.ConfigDict:
  """DM at DCrepo main_DM.py's settings: SGD lr_img 1 (10 for IPC >= 100), momentum
  0.5, real batch 256 per class, real init, Siamese DSA, a fresh ConvNet-3 (width 128,
  instance norm) per iteration; evaluation 1000 epochs with DSA, lr 0.01."""
  c = base_config(data=data, ipc=ipc)
  c.steps = steps
  c.optim.images.lr = 10.0 if ipc >= 100 else 1.0
  # DM's step has no loop around the network, where XLA's own convolution is fastest
  # on every backend (benchmarks/dm_step.py: 1.60 s vs 2.74 s for 'matmul' on 2 CPUs).
  c.model.conv_impl = 'xla'
  if runlocal:
    c.objective.batch_real = 16
    shrink_for_runlocal(c, steps=10, checkpoint_every=5, log_every=5)
  return c


def dm_quickstart_config(data: str, ipc: int, runlocal: bool = False
                         ) -> ml_collections.ConfigDict:
  """DM on a small data set for 2 CPU cores (configs/quickstart.py: digits): 1000 steps
  at lr 10, a real batch of 64 per class, the CPU-sized 300-epoch evaluation."""
  c = base_config(data=data, ipc=ipc)
  c.steps = 1000
  c.checkpoint_every = 100
  c.log_every = 50
  c.objective.batch_real = 64       # digits has 139-146 training images per class
  # DM's lr 1 (CIFAR, 20k steps) barely moves 8x8 digits in a few hundred steps;
  # measured on digits: lr 1/400 steps 88.8 %, lr 10/300 steps 89.5 %, lr 50/400 steps
  # 89.2 %; lr 10 with 1000 steps 90.4 %.
  c.optim.images.lr = 10.0
  c.eval.epochs = dataset(data).cpu_eval_epochs
  c.eval.seeds = 5
  if runlocal:
    shrink_for_runlocal(c, steps=20, checkpoint_every=10, log_every=5, eval_epochs=20)
  return c


def dc_config(data: str, ipc: int, *, dsa: bool, iterations: int, outer_loop: int = 0,
              inner_loop: int = 0, loops: dict | None = None,
              runlocal: bool = False) -> ml_collections.ConfigDict:
  """DC (``dsa=False``: noise init) or DSA (real init, Siamese DSA in the matching) at
  DCrepo's settings (main.py, utils.py; docs/methods.md §1 DC / DSA).

  A jaxdd step is one image update, so ``steps = iterations * outer_loop``; the
  (outer_loop, inner_loop) pair comes from DCrepo's table for ``ipc`` (or ``loops``)
  unless both are given. SGD lr_img 0.1, momentum 0.5, real batch 256 per class, inner
  training SGD lr_net 0.01, batch 256. Evaluation as DCrepo's: DSA's DSA, DC's
  ``DC_EVAL_AUGMENT`` (none on CIFAR-10), 1000 epochs when augmented, else 300, lr 0.01.
  A caller with another parameterization replaces ``c.parameterization``.
  """
  outer_loop, inner_loop = dc_loops(ipc, outer_loop, inner_loop, loops or DC_LOOPS)
  c = base_config(data=data, ipc=ipc)
  c.objective = ml_collections.ConfigDict(dict(
      name='dc', dsa=dsa, dsa_strategy=dsa_lib.DEFAULT_STRATEGY, batch_real=256,
      outer_loop=outer_loop, inner_loop=inner_loop, lr_net=0.01, batch_train=256,
      bn_per_class=16, param_mask='none', mask_ratio=0.0))
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=0.1, momentum=0.5))
  c.steps = iterations * outer_loop
  c.checkpoint_every = 50 * outer_loop      # every 50 iterations
  c.log_every = 10 * outer_loop             # DCrepo prints every 10 iterations
  c.parameterization.init = 'real' if dsa else 'noise'
  eval_augment = None if dsa else DC_EVAL_AUGMENT.get(data)
  c.eval.dsa = dsa or eval_augment is not None
  c.eval.epochs = 1000 if c.eval.dsa else 300   # DCrepo's epoch_eval_train
  if eval_augment:
    c.eval.dsa_strategy = eval_augment
  # conv_impl stays 'auto': the inner loop is a scan over training steps, where the
  # matmul-based convolutions (Winograd, patches) are ~100x faster on the CPU than
  # XLA's (models/layers.py).
  if runlocal:
    c.objective.update(outer_loop=2, inner_loop=1, batch_real=16)
    # steps=2: one iteration, an inner epoch, then a fresh network
    shrink_for_runlocal(c, steps=2, log_every=1)
  return c


def fred(c: ml_collections.ConfigDict, *, msz: int, lr: float, **init
         ) -> ml_collections.ConfigDict:
  """FreD's parameterization on config ``c``: ``msz`` DCT coefficients per instance
  under the authors' unnormalised DCT (``dct_norm`` None), SGD ``lr`` with momentum
  0.5 on them, hard labels; ``init`` (e.g. ``init='real'``) as the caller's
  parameterization states it.

  Under jaxdd's orthonormal DCT no single lr is equivalent: per axis the unnormalised
  transform is the orthonormal one times sqrt(2N) (2·sqrt(N) for frequency 0), so an
  SGD step of lr equals an orthonormal one of lr / (2N · 2N) on most coefficients
  (CIFAR-10: 1e6 / (2·32 · 2·32) ≈ 244 under DM, 1e3 → ≈ 0.24 under DC; 28x28: 1e5 /
  (2·28 · 2·28) ≈ 32), half that on the first row or column and a quarter on the DC
  term.
  """
  c.parameterization = ml_collections.ConfigDict(
      dict(name='fred', msz=msz, dct_norm=None, **init, learn_labels=False))
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=lr, momentum=0.5))
  return c


def fred_dm_config(data: str, ipc: int, steps: int, *, msz: int, lr: float,
                   runlocal: bool = False) -> ml_collections.ConfigDict:
  """FreD + DM (sdh0818/FreD DM/main_DM_FreD.py, scripts/run_DM_FreD.sh): DM's
  settings (``dm_config``) on ``msz`` frequency positions per class, lr_freq ``lr``."""
  return fred(dm_config(data, ipc, steps, runlocal), msz=msz, lr=lr)


def fred_dc_config(data: str, ipc: int, *, iterations: int, outer_loop: int,
                   inner_loop: int, msz: int, runlocal_msz: int,
                   runlocal: bool = False) -> ml_collections.ConfigDict:
  """FreD + DC (sdh0818/FreD DC/main_DC_FreD.py, DC/scripts/run_DC_FreD.sh): DC's
  settings with real init and FreD's loops (``FRED_LOOPS``), ``msz`` frequency
  positions per class, the authors' lr_freq 1e3; ``runlocal_msz`` for ``runlocal``."""
  c = dc_config(data, ipc, dsa=False, iterations=iterations, outer_loop=outer_loop,
                inner_loop=inner_loop, loops=FRED_LOOPS, runlocal=runlocal)
  return fred(c, msz=runlocal_msz if runlocal else msz, lr=1e3, init='real')


class Fiex(NamedTuple):
  """PAD's filtering of information extraction: drop the ``ratio`` of each class's
  real images that are ``drop`` ('hard' or 'easy') by EL2N."""
  drop: str
  ratio: float


# PAD's appendix on CIFAR-10 (Tables 6 and 7), the best ratio of each row: FIEX removes
# a fraction of each class's real images, FIEM masks the shallowest mask_ratio.
# Keys: the paper's IPC rows 1, 10, 500; other IPCs take the row of their regime.
PAD_FIEX = {'dm': {1: Fiex('hard', 0.5), 10: Fiex('hard', 0.2), 500: Fiex('easy', 0.15)},
            'dc': {1: Fiex('hard', 0.2), 10: Fiex('hard', 0.25), 500: Fiex('easy', 0.1)}}
PAD_FIEM = {'dm': {1: 0.0, 10: 0.25, 500: 0.75}, 'dc': {1: 0.0, 10: 0.25, 500: 0.75}}


def pad_alignment(c: ml_collections.ConfigDict, *, table: str, fiex: bool = True,
                  fiem: bool = True, runlocal: bool = False) -> ml_collections.ConfigDict:
  """PAD's filtering of information extraction (``real_filter``) and embedding
  (``objective.param_mask``) on a DM or DC config (``table`` 'dm' or 'dc'), at the
  ratios of ``PAD_FIEX``/``PAD_FIEM`` for ``c.ipc`` (the row 1 for IPC 1, 10 below
  IPC 100, 500 from 100 on; the paper does not report other IPCs)."""
  row = 1 if c.ipc <= 1 else (10 if c.ipc < 100 else 500)
  if fiex:
    c.real_filter.update(PAD_FIEX[table][row]._asdict())
  if fiem and PAD_FIEM[table][row] > 0:
    c.objective.update(param_mask='depth', mask_ratio=PAD_FIEM[table][row])
  if runlocal:   # one network, one epoch, scores kept apart from real runs' cache
    c.real_filter.update(el2n_nets=1, el2n_epochs=1, cache_dir=os.path.join(
        tempfile.gettempdir(), 'jaxdd_runlocal_difficulty'))
  return c
