"""Helpers for config files (``configs/*.py``): argument parsing and the common fields.

A config file defines ``get_config(arg)``; ``arg`` is what follows the colon in
``--config=configs/NAME.py:ARG``, e.g. ``10`` or ``ipc=10,runlocal``.
"""

import importlib.util
import os

import ml_collections
import tempfile

from jaxdd.augment import dsa as dsa_lib
from jaxdd.errors import ConfigError
from jaxdd.objectives.dc import DC_LOOPS, dc_loops


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses ``'ipc=10,runlocal'`` (or a bare ``'10'`` for the first key) over defaults.

  A bare name sets a boolean default to True. Values are cast to the default's type.
  """
  out = dict(defaults)
  first = next(iter(defaults)) if defaults else None
  for token in filter(None, (arg or '').split(',')):
    key, sep, value = token.partition('=')
    if not sep:
      if key in defaults and isinstance(defaults[key], bool):
        out[key] = True
        continue
      key, value = first, token
    if key not in defaults:
      raise ConfigError(f'config argument {key!r} is unknown; accepted: '
                        f'{", ".join(defaults)}')
    kind = type(defaults[key])
    try:
      out[key] = (value.lower() in ('1', 'true', 'yes')) if kind is bool else kind(value)
    except ValueError:
      raise ConfigError(f'config argument {key}={value!r} is not a '
                        f'{kind.__name__}') from None
  return ml_collections.ConfigDict(out)


def base_config(*, data: str, ipc: int) -> ml_collections.ConfigDict:
  """The fields every distillation config has, at the literature's defaults."""
  c = ml_collections.ConfigDict()
  c.data = data                 # digits | npz:PATH | tfds:NAME
  c.data_dir = ''               # tfds data_dir ('' = tfds default)
  c.manual_dir = ''             # tfds manual_dir for offline archives
  c.data_download = False       # tfds: download a missing data set (needs internet)
  c.zca = 'none'                # none | raw (MTT) | krr (KIP/FRePo/PoDD)
  c.ipc = ipc
  c.seed = 0
  c.steps = 1000
  c.checkpoint_every = 500
  c.log_every = 50
  c.model = ml_collections.ConfigDict(
      dict(name='convnet', width=128, depth=3, norm='instancenorm', pooling='avgpooling',
           conv_impl='auto'))
  c.parameterization = ml_collections.ConfigDict(
      dict(name='pixels', init='real', learn_labels=False))
  # param_mask/mask_ratio: PAD's selection of the deeper layers' embeddings (DM and DC;
  # objectives/selection.py); off by default.
  c.objective = ml_collections.ConfigDict(
      dict(name='dm', batch_real=256, dsa=True, dsa_strategy=dsa_lib.DEFAULT_STRATEGY,
           param_mask='none', mask_ratio=0.0))
  c.optim = ml_collections.ConfigDict()
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=1.0, momentum=0.5))
  c.eval = ml_collections.ConfigDict(
      dict(model='convnet', seeds=5, epochs=1000, batch_size=256, lr=0.01, dsa=True,
           loss='ce'))
  # Model selection (PoDD selects on training-set accuracy): every ``every`` steps, and
  # at the last, ``seeds`` networks train on the current set by the eval protocol and
  # are scored on ``samples`` training images (a fixed random subset, or all of them);
  # the best set is the output. 0 = off: the last step's set.
  c.select = ml_collections.ConfigDict(dict(every=0, seeds=1, samples=10000))
  # PAD's filtered real pool (data/real_filter.py): drop none | hard | easy, the ``ratio``
  # of each class by EL2N difficulty; off by default.
  c.real_filter = ml_collections.ConfigDict(dict(
      drop='none', ratio=0.0, el2n_nets=3, el2n_epochs=2, cache_dir=''))
  return c


def load_config_file(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of a config file, as ``--config=PATH:ARG`` would call it."""
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f'jaxdd_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def sibling_on_digits(this_file: str, sibling: str, arg: str | None
                      ) -> ml_collections.ConfigDict:
  """The config file ``sibling`` beside ``this_file`` (e.g. an MNIST config), as
  ``--config=sibling:arg`` gives it, with ``data='digits'``: a digits config that keeps
  its sibling's settings."""
  c = load_config_file(os.path.join(os.path.dirname(this_file), sibling), arg)
  c.data = 'digits'
  return c


def two_blocks_on_digits(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """ConvNet-2 (width 128, instance norm) as the distillation and the evaluation net on
  8×8 digits, for the methods that unroll training (RaT-BPTT, PoDD).

  ConvNet-3's third block instance-normalises 2×2 maps (4 values per channel), and
  training through it unrolled is chaotic: with one fixed network and real batch, 150
  Adam steps on 10 digits moved the 30-step meta-loss from 2.03 to 1.98 with gradient
  norms between 10 and 700; with ConvNet-2 (8×8 and 4×4 maps) from 1.95 to 0.28 with
  norms ≤ 1.4. The random-subset baseline is scored with the same ConvNet-2.
  """
  c.model.depth = 2
  c.eval.model = 'convnetd2'
  return c


def shrink_for_runlocal(c: ml_collections.ConfigDict, steps: int = 4, *,
                        checkpoint_every: int = 2, log_every: int = 2,
                        eval_epochs: int = 10) -> ml_collections.ConfigDict:
  """The ``runlocal`` sizes every config shares: a few steps, a short 2-seed eval,
  narrow networks (``narrow_for_runlocal``)."""
  c.steps = steps
  c.checkpoint_every = checkpoint_every
  c.log_every = log_every
  c.eval.epochs = eval_epochs
  c.eval.seeds = 2
  return narrow_for_runlocal(c)


def narrow_for_runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Narrow networks for ``runlocal``: a width-16 ConvNet distils, ConvNet-W32 evaluates.

  ``runlocal`` checks the wiring from data to results, not accuracy; the width-128
  networks' evaluation alone took half of a run (2 CPU cores), and every test of a
  config runs it. Other architectures and ConvNet variants keep their names.
  """
  if c.model.name == 'convnet' and c.model.get('width', 16) > 16:
    c.model.width = 16
  if c.eval.model == 'convnet':
    c.eval.model = 'convnetw32'
  return c


def mtt_mnist_config(ipc: int, steps: int, runlocal: bool) -> ml_collections.ConfigDict:
  """MTT on MNIST sized for a CPU (configs/mtt_mnist.py; pad_mnist.py builds on it)."""
  c = base_config(data='tfds:mnist', ipc=ipc)
  c = trajectory_config(c, steps=steps, syn_steps=20 if ipc == 1 else 10,
                        expert_epochs=2, max_start_epoch=3, lr_img=100.0,
                        lr_lr=1e-7 if ipc == 1 else 1e-5, num_experts=10,
                        expert_train_epochs=5, runlocal=runlocal)
  c.eval.epochs = 10 if runlocal else 300
  # Each student step's gradient in 2 rematerialised halves: the same meta-gradient,
  # +0.66 GB of host memory instead of +1.16 GB at IPC 10, syn_steps 10, for 7-11 %
  # more time (benchmarks/mtt_memory.py), so the CPU-sized run stays within 1 GB of
  # its start. Whole-set batches (10 x IPC images) always split in two.
  c.objective.grad_chunks = 2
  for node in (c.eval, c.objective, c.objective.experts):   # digits must not be flipped
    node.dsa_strategy = 'crop_scale_rotate'
  return c


def ratbptt_update(c: ml_collections.ConfigDict, *, batch_real: int, window: int,
                   total_window: int, batch_syn: int, dsa_strategy: str,
                   complete_random: bool, learn_labels: bool = True
                   ) -> ml_collections.ConfigDict:
  """RaT-BPTT's objective and optimizers (METHODS.md §1 RaT-BPTT; RaT-BPTT and PoDD).

  Adam 1e-3 inner (eps_root 1e-8) and outer, outer gradients clipped to 2x an EMA
  (0.9) of their norm, random truncation of ``window`` of ``total_window`` steps,
  per-sample ``dsa_strategy`` on both sides; learned labels (Adam 1e-3, clamped >= 0)
  when ``learn_labels``.
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
    c.optim.labels = ml_collections.ConfigDict(dict(name='adam', lr=1e-3, nonnegative=True))
  return c


def kip_update(c: ml_collections.ConfigDict, *, batch_real: int, kernel_arch: str
               ) -> ml_collections.ConfigDict:
  """KIP's objective and optimizers (METHODS.md §1 KIP; configs kip_*).

  Kernel ridge regression with neural-tangents' NTK (W_std √2, b_std 0.1, depth 3) of
  ``kernel_arch``, trace-scaled ridge 1e-6, centred one-hot targets; Adam 0.04 on the
  images and the learned labels; MSE evaluation of those labels.
  """
  c.parameterization.learn_labels = True
  c.objective = ml_collections.ConfigDict(dict(
      name='kip', batch_real=batch_real, kernel='nt_ntk', reg=1e-6, syn_labels='center',
      kernel_arch=kernel_arch, kernel_depth=3, W_std=2 ** 0.5, b_std=0.1))
  c.optim.images = ml_collections.ConfigDict(dict(name='adam', lr=0.04))
  c.optim.labels = ml_collections.ConfigDict(dict(name='adam', lr=0.04))
  c.eval.loss = 'mse'   # the learned labels are regression targets, not probabilities
  return c


def frepo_update(c: ml_collections.ConfigDict, *, batch_real: int, steps: int
                 ) -> ml_collections.ConfigDict:
  """FRePo's objective and optimizers (METHODS.md §1 FRePo; configs frepo_*).

  KRR on the features of a pool of 10 ConvNet-3 (batch norm) networks, each stepped
  once per iteration with Adam 3e-4 and reset at age 100; ridge 1e-6; learned labels
  from centred one-hot / √(C/10) plus the label-margin term; LAMB 3e-4 with cosine
  decay over ``steps`` to 0.1x on images and labels; MSE evaluation.
  """
  c.model.name = 'convnet_bn'
  c.model.norm = 'batchnorm'
  c.parameterization.learn_labels = True
  c.objective = ml_collections.ConfigDict(dict(
      name='frepo', batch_real=batch_real, pool_size=10, max_age=100, lr_net=3e-4,
      reg=1e-6, label_margin_weight=1.0, pool_update='all', syn_labels='frepo'))
  lamb = dict(name='lamb', lr=3e-4, cosine_decay_steps=steps, cosine_alpha=0.1)
  c.optim.images = ml_collections.ConfigDict(lamb)
  c.optim.labels = ml_collections.ConfigDict(lamb)
  c.eval.loss = 'mse'   # the learned labels are regression targets, not probabilities
  return c


# PAD's appendix on CIFAR-10 (Tables 6 and 7), the best ratio of each row: FIEX removes
# (drop, ratio) of each class's real images, FIEM masks the shallowest mask_ratio.
# Keys: the paper's IPC rows 1, 10, 500; other IPCs take the row of their regime.
PAD_FIEX = {'dm': {1: ('hard', 0.5), 10: ('hard', 0.2), 500: ('easy', 0.15)},
            'dc': {1: ('hard', 0.2), 10: ('hard', 0.25), 500: ('easy', 0.1)}}
PAD_FIEM = {'dm': {1: 0.0, 10: 0.25, 500: 0.75}, 'dc': {1: 0.0, 10: 0.25, 500: 0.75}}


def pad_alignment(c: ml_collections.ConfigDict, *, table: str, fiex: bool = True,
                  fiem: bool = True, runlocal: bool = False) -> ml_collections.ConfigDict:
  """PAD's filtering of information extraction (``real_filter``) and embedding
  (``objective.param_mask``) on a DM or DC config (``table`` 'dm' or 'dc'), at the
  ratios of ``PAD_FIEX``/``PAD_FIEM`` for ``c.ipc`` (the row 1 for IPC 1, 10 below
  IPC 100, 500 from 100 on; the paper does not report other IPCs)."""
  row = 1 if c.ipc <= 1 else (10 if c.ipc < 100 else 500)
  if fiex:
    drop, ratio = PAD_FIEX[table][row]
    c.real_filter.update(drop=drop, ratio=ratio)
  if fiem and PAD_FIEM[table][row] > 0:
    c.objective.update(param_mask='depth', mask_ratio=PAD_FIEM[table][row])
  if runlocal:   # one network, one epoch, scores kept apart from real runs' cache
    c.real_filter.update(el2n_nets=1, el2n_epochs=1, cache_dir=os.path.join(
        tempfile.gettempdir(), 'jaxdd_runlocal_difficulty'))
  return c


def dc_config(*, data: str, ipc: int, dsa: bool, init: str, iterations: int,
              eval_dsa: bool, eval_epochs: int, eval_dsa_strategy: str | None = None,
              outer_loop: int = 0, inner_loop: int = 0, loops: dict | None = None,
              runlocal: bool = False) -> ml_collections.ConfigDict:
  """The fields DC and DSA configs share (DCrepo main.py; METHODS.md §1 DC / DSA).

  A jaxdd step is one image update, so ``steps = iterations * outer_loop``; the
  (outer_loop, inner_loop) pair comes from DCrepo's table for ``ipc`` (or ``loops``)
  unless both are given. Returns a config at DCrepo's settings: SGD lr_img 0.1,
  momentum 0.5, real batch 256 per class, inner training SGD lr_net 0.01, batch 256.
  ``init`` is the pixels' init ('noise' for DC, 'real' for DSA); a caller with another
  parameterization replaces ``c.parameterization``.
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
  c.parameterization.init = init
  c.eval.dsa = eval_dsa
  c.eval.epochs = eval_epochs
  if eval_dsa_strategy:
    c.eval.dsa_strategy = eval_dsa_strategy
  # conv_impl stays 'auto': the inner loop is a scan over training steps, where the
  # matmul-based convolutions (Winograd, patches) are ~100x faster on the CPU than
  # XLA's (models/layers.py).
  if runlocal:
    c.objective.update(outer_loop=2, inner_loop=1, batch_real=16)
    # steps=2: one iteration, an inner epoch, then a fresh network
    shrink_for_runlocal(c, steps=2, log_every=1)
  return c


def trajectory_config(c: ml_collections.ConfigDict, *, steps: int, syn_steps: int,
                      expert_epochs: int, max_start_epoch: int, lr_img: float,
                      lr_lr: float, num_experts: int, expert_train_epochs: int,
                      lr_teacher: float = 0.01,
                      runlocal: bool = False) -> ml_collections.ConfigDict:
  """Adds MTT's fields to a ``base_config`` (METHODS.md §1 MTT; objectives/trajectory.py).

  Images and the learned student lr (``syn_lr``, an 'extras' leaf) use SGD with
  momentum 0.5; the experts are trained on the first run (SGD lr 0.01, batch 256,
  DSA) and cached under ``~/.cache/jaxdd/experts``. DATM and PAD configs change the
  returned config.
  """
  c.steps = steps
  c.checkpoint_every = 500
  c.log_every = 10
  c.objective = ml_collections.ConfigDict(dict(
      name='mtt', batch_real=8,   # MTT reads no real batch: a small one keeps it cheap
      syn_steps=syn_steps, expert_epochs=expert_epochs, max_start_epoch=max_start_epoch,
      min_start_epoch=0, max_start_epoch_initial=0, expansion_end_step=0, batch_syn=0,
      dsa=True, dsa_strategy=dsa_lib.DEFAULT_STRATEGY, lr_teacher=lr_teacher,
      label_loss='ce', threshold=0.0, param_mask='none', mask_ratio=0.0,
      checkpoint='step', init_from_experts=False,
      # >1: each student step's gradient in that many rematerialised sub-batches, for
      # 1/grad_chunks of one step's activation memory (objectives/trajectory.py).
      grad_chunks=1))
  c.objective.experts = ml_collections.ConfigDict(dict(
      num_experts=num_experts, epochs=expert_train_epochs, lr=0.01, momentum=0.0,
      weight_decay=0.0, batch_size=256, dsa=True, dsa_strategy=dsa_lib.DEFAULT_STRATEGY,
      cache_dir=os.path.join(os.path.expanduser('~'), '.cache', 'jaxdd', 'experts'),
      schedule='none'))
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=lr_img, momentum=0.5))
  c.optim.extras = ml_collections.ConfigDict(dict(name='sgd', lr=lr_lr, momentum=0.5))
  if runlocal:
    c.objective.update(syn_steps=2, expert_epochs=1, max_start_epoch=1)
    # lr 0.3: the briefly trained experts must classify some images (DATM's init).
    c.objective.experts.update(
        num_experts=2, epochs=2, batch_size=8,
        cache_dir=os.path.join(tempfile.gettempdir(), 'jaxdd_runlocal_experts'))
    c.model.width = 16   # a narrow student and experts: runlocal checks wiring, not accuracy
    shrink_for_runlocal(c)
  return c


# DATM's CIFAR-10 table (METHODS.md §1 DATM; the paper's, DATM #7), shared by the DATM
# and PAD configs: ipc -> (max_start_initial, max_start, expansion_end_step, lr_img,
# lr_lr, lr_y, threshold).
DATM_CIFAR10 = {1: (0, 4, 0, 100.0, 1e-7, 5.0, 1.1),
                10: (10, 20, 1000, 100.0, 1e-5, 2.0, 1.0),
                50: (20, 40, 2000, 1000.0, 1e-5, 2.0, 1.0)}


def datm_cifar10_config(data: str, ipc: int, steps: int, *, expert_epochs: int = 2,
                        runlocal: bool = False) -> ml_collections.ConfigDict:
  """DATM on CIFAR-10 at the paper's settings for ``ipc`` (1, 10 or 50; else 10's)."""
  start0, max_start, expand, lr_img, lr_lr, lr_y, thr = DATM_CIFAR10.get(
      ipc, DATM_CIFAR10[10])
  c = base_config(data=data, ipc=ipc)
  c.zca = 'raw'
  c = trajectory_config(c, steps=steps, syn_steps=80, expert_epochs=expert_epochs,
                        max_start_epoch=max_start, lr_img=lr_img, lr_lr=lr_lr,
                        num_experts=100, expert_train_epochs=100, runlocal=runlocal)
  return datm_update(c, lr_y=lr_y, threshold=thr, max_start_initial=start0,
                     expansion_end_step=expand, runlocal=runlocal)


def datm_update(c: ml_collections.ConfigDict, *, lr_y: float, threshold: float,
                max_start_initial: int, expansion_end_step: int,
                runlocal: bool = False) -> ml_collections.ConfigDict:
  """Turns a ``trajectory_config`` into DATM (METHODS.md §1 DATM).

  Learned soft labels initialised from the experts' logits of real images the experts
  classify correctly (only those images initialise), SGD(lr_y, momentum 0.9) on them,
  soft cross-entropy in the student and in evaluation; the start-epoch window grows
  from ``max_start_initial`` to ``max_start_epoch`` by ``expansion_end_step``; steps
  whose loss exceeds ``threshold`` are skipped. GSAM experts are replaced by plain SGD
  (jaxdd.pretrain.experts).
  """
  c.parameterization.learn_labels = True
  c.objective.update(label_loss='soft_ce', threshold=threshold, init_from_experts=True,
                     max_start_epoch_initial=max_start_initial,
                     expansion_end_step=expansion_end_step)
  c.optim.labels = ml_collections.ConfigDict(dict(name='sgd', lr=lr_y, momentum=0.9))
  c.eval.loss = 'soft_ce'
  c.eval.batch_size = 128
  if runlocal:
    # The stand-in data's briefly trained experts may classify no image of a class
    # correctly, which DATM's init needs: runlocal starts from random real images.
    # (The init path is tested in test_distill.py and test_trajectory.py.)
    c.objective.update(max_start_epoch_initial=1, expansion_end_step=2,
                       init_from_experts=False)
  return c


def pad_update(c: ml_collections.ConfigDict, *, mask_ratio: float,
               runlocal: bool = False) -> ml_collections.ConfigDict:
  """Turns a DATM config into PAD (METHODS.md §2 PAD).

  Experts trained on EL2N-scheduled data (the easiest 75 % of each class growing to all
  by epoch 20, then the easiest 10 % dropped after epoch 40 and 20 % after epoch 60),
  and the first ``mask_ratio`` of the depth-ordered parameter vector masked out of
  both terms of the matching loss (the paper; the released code's 'smallest_error'
  variant is ``objective.param_mask``).
  """
  c.objective.update(param_mask='depth' if mask_ratio > 0 else 'none',
                     mask_ratio=mask_ratio)
  c.objective.experts.schedule = 'pad'
  c.objective.pad = ml_collections.ConfigDict(dict(
      initial_ratio=0.75, add_end_epoch=20, remove_epochs=(40, 60),
      remove_fractions=(0.1, 0.2), el2n_nets=3, el2n_epochs=2))
  if runlocal:
    c.objective.pad.update(add_end_epoch=1, remove_epochs=(1, 2), el2n_nets=1,
                           el2n_epochs=1)
  return c
