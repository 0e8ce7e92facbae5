"""Recipes of the methods that train through an unrolled inner loop: RaT-BPTT and PoDD.

RaT-BPTT (Feng, Vedantam & Kempe, ICLR 2024; docs/methods.md §1 RaT-BPTT;
fengyzpku/Simple_Dataset_Distillation README, framework/base.py) and PoDD (Shul,
Horwitz & Hoshen 2024; docs/methods.md §2 PoDD; paper §5.1 "Implementation Details",
``AsafShul/PoDD`` README commands), whose distiller is RaT-BPTT. The CIFAR-10 and CUB
recipes are the papers'; the ``*_cpu_config`` ones are shortened for 2 CPU cores
(MNIST, digits). Results and experiment logs: docs/results/unrolled.md (RaT-BPTT),
docs/results/podd.md.
"""

import ml_collections

from jaxdd.config_utils import base_config, shrink_for_runlocal
from jaxdd.parameterizations import poster_geometry
from jaxdd.recipes.datasets import DataSettings, dataset, dsa_groups, no_flips

# The paper's fixed-label runs: CIFAR-10 at 0.7, 0.8, 0.9, 1.0 IPC.
LEARNED_LABELS_BELOW = 0.7


def ratbptt_update(c: ml_collections.ConfigDict, *, batch_real: int, window: int,
                   total_window: int, batch_syn: int, dsa_strategy: str,
                   complete_random: bool, learn_labels: bool = True
                   ) -> ml_collections.ConfigDict:
  """RaT-BPTT's objective and optimizers (docs/methods.md §1 RaT-BPTT; RaT-BPTT and PoDD).

  Adam 1e-3 inner (eps_root 1e-8, see jaxdd/objectives/bptt.py) and outer, outer
  gradients clipped to 2x an EMA (0.9) of their norm, random truncation of ``window``
  of ``total_window`` steps, per-sample ``dsa_strategy`` on both sides; learned labels
  (Adam 1e-3, clamped >= 0) when ``learn_labels``.
  """
  c.objective = ml_collections.ConfigDict(dict(
      name='bptt', batch_real=batch_real, window=window, total_window=total_window,
      min_window=0, truncation='random', complete_random=complete_random, redraw_every=0,
      inner_optim='adam', inner_lr=1e-3, eps_root=1e-8, batch_syn=batch_syn,
      syn_dsa=True, syn_dsa_strategy=dsa_strategy, real_dsa=True,
      real_dsa_strategy=dsa_strategy, label_norm='none', remat=True))
  c.optim.images = ml_collections.ConfigDict(dict(
      name='adam', lr=1e-3, clip_running_norm=True, clip_factor=2.0, clip_decay=0.9))
  if learn_labels:
    c.optim.labels = ml_collections.ConfigDict(
        dict(name='adam', lr=1e-3, nonnegative=True))
  return c


def unrolled_nets(c: ml_collections.ConfigDict, ds: DataSettings
                  ) -> ml_collections.ConfigDict:
  """The data's ConvNet depth for unrolled training, as the distillation and the
  evaluation net (the random-subset baseline is scored with the same net).

  On 8×8 digits that is ConvNet-2 (width 128, instance norm): ConvNet-3's third block
  instance-normalises 2×2 maps (4 values per channel), and training through it unrolled
  is chaotic: with one fixed network and real batch, 150 Adam steps on 10 digits moved
  the 30-step meta-loss from 2.03 to 1.98 with gradient norms between 10 and 700; with
  ConvNet-2 (8×8 and 4×4 maps) from 1.95 to 0.28 with norms ≤ 1.4.
  """
  if ds.unrolled_depth != c.model.depth:
    c.model.depth = ds.unrolled_depth
    c.eval.model = f'convnetd{ds.unrolled_depth}'
  return c


def ratbptt_cifar10_config(ipc: int, steps: int, runlocal: bool = False
                           ) -> ml_collections.ConfigDict:
  """RaT-BPTT on CIFAR-10 at the reference's settings: a fresh ConvNet-3 per meta-step,
  window 60 of 200 inner steps, learned labels, real batch 5000 (500 per class),
  flip_rotate, the KIP-style ZCA; jaxdd's evaluation protocol (SGD, 1000 epochs, DSA)."""
  c = base_config(data='tfds:cifar10', ipc=ipc)
  c.zca = 'krr'
  c.steps = steps
  c.checkpoint_every = 500
  c.parameterization.learn_labels = True
  ratbptt_update(c, batch_real=500, window=60, total_window=200, batch_syn=0,
                 dsa_strategy='flip_rotate', complete_random=False)
  if runlocal:
    c.objective.update(batch_real=8, window=2, total_window=4)
    shrink_for_runlocal(c)
  return c


def ratbptt_cpu_config(data: str, ipc: int, steps: int, runlocal: bool = False
                       ) -> ml_collections.ConfigDict:
  """RaT-BPTT shortened for 2 CPU cores: window 20 of 60 inner steps redrawn every step,
  a real batch of 64 per class, no ZCA, the data's DSA groups, evaluation net and
  CPU-sized evaluation (jaxdd's protocol)."""
  ds = dataset(data)
  c = base_config(data=data, ipc=ipc)
  c.steps = steps
  c.checkpoint_every = 100
  c.log_every = 20
  c.parameterization.learn_labels = True
  ratbptt_update(c, batch_real=64, window=20, total_window=60, batch_syn=0,
                 dsa_strategy=dsa_groups(ds, 'flip_rotate'), complete_random=True)
  c.eval.epochs = ds.cpu_eval_epochs
  no_flips(ds, c.eval)
  unrolled_nets(c, ds)
  if runlocal:
    c.objective.update(batch_real=8, window=2, total_window=4)
    shrink_for_runlocal(c)
  return c


def poster(*, learn_labels: bool, patches: tuple, **labels) -> ml_collections.ConfigDict:
  """PoDD's poster parameterization: Gaussian class tiles, PoDDL labels pooled over each
  patch by area as the paper says (the authors' code: ``label_pool='crop'``), PoCO
  class order on the class names' text embeddings (all-MiniLM-L6-v2 in place of the
  paper's CLIP text tower; ``'poco_pixels'`` orders by class-mean images, ``''`` keeps
  row-major order); ``labels`` e.g. ``fixed_labels='majority'``."""
  return ml_collections.ConfigDict(dict(
      name='poster', init='tiles', learn_labels=learn_labels, **labels,
      label_pool='area', patches=patches, class_order='poco_text'))


def paper_patches(ipc: float, total: int = 96, split=(16, 6), num_classes: int = 10,
                  image_hw=(32, 32)) -> tuple[int, int]:
  """(n_x, n_y): the paper's 16×6, or ``total`` patches over the crop rows there are.

  A poster of ``ipc`` images per class (``poster_geometry.poster_size``) of height Hp has
  Hp − H + 1 crop rows; when that is fewer than 6 (IPC 0.3: 35 px, 4 rows) the 96
  patches become round(96 / rows) × rows, at most one per crop column.
  """
  hp, wp = poster_geometry.poster_size(ipc, num_classes, image_hw,
                                      poster_geometry.default_grid(num_classes))
  n_x, n_y = split
  rows, cols = hp - image_hw[0] + 1, wp - image_hw[1] + 1
  if n_y > rows:
    n_y = rows
    n_x = min(cols, round(total / n_y))
  return min(n_x, cols), n_y


def podd_cifar10_config(ipc: float, steps: int, runlocal: bool = False
                        ) -> ml_collections.ConfigDict:
  """PoDD on CIFAR-10 at the paper's settings: p = 96 patches (``paper_patches``), all
  in each inner step, PoDDL labels learned below 0.7 IPC and the patch's majority class
  from 0.7 on, RaT-BPTT with a real batch of 5000, flip_rotate, the KIP-style ZCA;
  ``steps`` 40k = the paper's 4k epochs of 10 meta-steps; the poster selected by
  training-set accuracy every 1000 steps as the authors' (``select``)."""
  c = base_config(data='tfds:cifar10', ipc=ipc)
  c.zca = 'krr'
  c.steps = steps
  c.checkpoint_every = 500
  learn = ipc < LEARNED_LABELS_BELOW
  c.parameterization = poster(learn_labels=learn, fixed_labels='majority',
                              patches=paper_patches(ipc))
  ratbptt_update(c, batch_real=500, window=60, total_window=200, batch_syn=96,
                 dsa_strategy='flip_rotate', complete_random=False, learn_labels=learn)
  c.eval.loss = 'ce'   # patch labels are distributions: CE against them as weights
  c.select.every = 1000   # PoDD selects by training-set accuracy
  if runlocal:
    # A CPU-sized smoke run: a narrow distillation net and evaluation net.
    c.objective.update(batch_real=8, window=2, total_window=4, batch_syn=8)
    c.zca = 'none'   # its 3072x3072 eigendecomposition would dominate a CPU smoke run
    shrink_for_runlocal(c)
  return c


def podd_cub_config(ipc: float, steps: int, runlocal: bool = False
                    ) -> ml_collections.ConfigDict:
  """PoDD on CUB-200-2011 at 32×32 at the paper's settings: 1800 = 60×30 patches, 200
  per inner step, PoDDL labels, RaT-BPTT with a real batch of 3000, flip_rotate, the
  KIP-style ZCA; ``steps`` 16k = the paper's 8k epochs of 2 meta-steps."""
  ds = dataset('tfds:caltech_birds2011')
  c = base_config(data=ds.data, ipc=ipc)
  c.data_resize = ds.resize   # CUB's images vary in size; PoDD and RaT-BPTT use 32×32
  c.zca = 'krr'
  c.steps = steps
  c.checkpoint_every = 500
  c.log_every = 25
  c.parameterization = poster(learn_labels=True, patches=(60, 30))
  ratbptt_update(c, batch_real=15, window=60, total_window=200, batch_syn=200,
                 dsa_strategy='flip_rotate', complete_random=False)   # 15 per class
  c.eval.loss = 'ce'
  c.select.every = 1000   # PoDD selects by training-set accuracy
  if runlocal:   # 200 patches, 2 steps of a 2-of-4 unroll on 1 real image per class
    c.parameterization.patches = (20, 10)
    c.zca = 'none'   # its 3072x3072 eigendecomposition would dominate a CPU smoke run
    c.objective.update(batch_real=1, window=2, total_window=4, batch_syn=16)
    shrink_for_runlocal(c, steps=2)
    c.eval.epochs = 2
  return c


def podd_cpu_config(data: str, ipc: float, steps: int, runlocal: bool = False
                    ) -> ml_collections.ConfigDict:
  """PoDD with ``ratbptt_cpu_config`` as distiller: the poster of ``podd_cifar10_config``
  at ``ipc`` images per class, its patches at the paper's CIFAR-10 density
  (``patches=()``: ``poster_geometry.default_patches``; an (n_x, n_y) pair, e.g.
  ``--config.parameterization.patches='(10, 4)'``, sets the grid) all in each inner
  step, PoDDL learned labels; the poster selected by training-set accuracy every 100
  steps. On digits the class tiles start from real images and labels are pooled by
  whole cells (both measured: docs/results/podd.md)."""
  c = ratbptt_cpu_config(data, ipc, steps)
  c.parameterization = poster(learn_labels=True, patches=())
  c.eval.loss = 'ce'
  c.select.every = 100   # PoDD selects by training-set accuracy
  if data == 'digits':
    # The paper's unit-norm Gaussian tiles are 1/8 of a normalised 8x8 digit's norm and
    # left the poster at chance for 100 steps; the authors' whole-cell label windows
    # beat the paper's area pooling on 8x8 digits (83.19 vs 75.49 % at 1 IPC, 10x4
    # patches, 1200 steps).
    c.parameterization.update(init='real', label_pool='crop')
  if runlocal:
    c.objective.update(batch_real=8, window=2, total_window=4, batch_syn=8)
    shrink_for_runlocal(c)
  return c
