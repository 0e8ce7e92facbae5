"""Recipes of trajectory matching: MTT, DATM, PAD and FreD + MTT.

MTT (Cazenavette et al., CVPR 2022; docs/methods.md §1 MTT), DATM (Guo et al., ICLR 2024;
docs/methods.md §1 DATM; the paper's table, which the maintainers say to follow over the
configs, DATM #7), PAD (Li et al., 2024; docs/methods.md §2 PAD) and FreD's parameterization
under MTT (Shin, Shin & Moon, NeurIPS 2023; sdh0818/FreD TM scripts). The CIFAR-10
recipes are the papers' tables; the ``*_cpu_config`` ones are MTT's CPU-sized buffer
(10 experts × 5 epochs) for MNIST. Results and experiment logs:
docs/results/trajectory.md.
"""

import os
import tempfile
from typing import NamedTuple

import ml_collections

from jaxdd.augment import dsa as dsa_lib
from jaxdd.config_utils import base_config, shrink_for_runlocal
from jaxdd.recipes.datasets import dataset, no_flips
from jaxdd.recipes.matching import fred


def trajectory_config(c: ml_collections.ConfigDict, *, steps: int, syn_steps: int,
                      expert_epochs: int, max_start_epoch: int, lr_img: float,
                      lr_lr: float, num_experts: int, expert_train_epochs: int,
                      lr_teacher: float = 0.01,
                      runlocal: bool = False) -> ml_collections.ConfigDict:
  """Adds MTT's fields to a ``base_config`` (docs/methods.md §1 MTT;
  objectives/trajectory_matching.py).

  Images and the learned student lr (``syn_lr``, an 'extras' leaf) use SGD with
  momentum 0.5; the experts are trained on the first run (SGD lr 0.01, batch 256,
  DSA) and cached under ``~/.cache/jaxdd/experts``. DATM and PAD recipes change the
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
      # 1/grad_chunks of one step's activation memory (objectives/trajectory_loss.py).
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
    # A narrow student and experts: runlocal checks wiring, not accuracy.
    c.model.width = 16
    shrink_for_runlocal(c)
  return c


class MttSettings(NamedTuple):
  """A row of MTT's CIFAR-10 table (as docs/methods.md reads it)."""
  syn_steps: int
  max_start_epoch: int
  zca: str
  lr_img: float
  lr_lr: float


# ipc -> settings; lr_img 1e3 at IPC 10, not the table's 1e5: a typo confirmed by the
# maintainer (mtt #31; 100 or 1000 are stable).
MTT_CIFAR10 = {1: MttSettings(50, 2, 'raw', 1e3, 1e-7),
               10: MttSettings(30, 20, 'raw', 1e3, 1e-5),
               50: MttSettings(30, 40, 'none', 1e3, 1e-5)}


def mtt_cifar10_config(ipc: int, steps: int, runlocal: bool = False
                       ) -> ml_collections.ConfigDict:
  """MTT on CIFAR-10 at the paper's table for ``ipc`` (1, 10 or 50; else 10's): experts
  100 × 50 epochs, expert_epochs 2, initial syn_lr 0.01, batch_syn the whole set."""
  row = MTT_CIFAR10.get(ipc, MTT_CIFAR10[10])
  c = base_config(data='tfds:cifar10', ipc=ipc)
  c.zca = row.zca
  return trajectory_config(c, steps=steps, syn_steps=row.syn_steps, expert_epochs=2,
                           max_start_epoch=row.max_start_epoch, lr_img=row.lr_img,
                           lr_lr=row.lr_lr, num_experts=100, expert_train_epochs=50,
                           runlocal=runlocal)


def mtt_cpu_config(data: str, ipc: int, steps: int, runlocal: bool = False
                   ) -> ml_collections.ConfigDict:
  """MTT sized for a CPU (configs/mtt_mnist.py; the DATM, PAD and FreD MNIST recipes
  build on it): a buffer of 10 experts × 5 epochs, expert_epochs 2, max_start_epoch 3,
  syn_steps 20 (IPC 1) / 10, lr_img 100, lr_lr 1e-5 (1e-7 at IPC 1, as MTT's CIFAR-10
  table), no ZCA, the data's CPU-sized evaluation and DSA groups."""
  ds = dataset(data)
  c = base_config(data=data, ipc=ipc)
  c = trajectory_config(c, steps=steps, syn_steps=20 if ipc == 1 else 10,
                        expert_epochs=2, max_start_epoch=3, lr_img=100.0,
                        lr_lr=1e-7 if ipc == 1 else 1e-5, num_experts=10,
                        expert_train_epochs=5, runlocal=runlocal)
  c.eval.epochs = 10 if runlocal else ds.cpu_eval_epochs
  # Each student step's gradient in 2 rematerialised halves: the same meta-gradient,
  # +0.66 GB of host memory instead of +1.16 GB at IPC 10, syn_steps 10, for 7-11 %
  # more time (benchmarks/mtt_memory.py), so the CPU-sized run stays within 1 GB of
  # its start. Whole-set batches (10 x IPC images) always split in two.
  c.objective.grad_chunks = 2
  no_flips(ds, c.eval, c.objective, c.objective.experts)
  return c


class DatmSettings(NamedTuple):
  """A row of DATM's CIFAR-10 table (docs/methods.md §1 DATM; the paper's, DATM #7)."""
  max_start_initial: int     # the start-epoch window's upper end at step 0
  max_start: int             # ... grown to this by expansion_end_step
  expansion_end_step: int
  lr_img: float
  lr_lr: float
  lr_y: float                # SGD lr of the learned soft labels
  threshold: float           # steps whose loss exceeds it are skipped


# ipc -> settings; shared by the DATM and PAD recipes.
DATM_CIFAR10 = {1: DatmSettings(0, 4, 0, 100.0, 1e-7, 5.0, 1.1),
                10: DatmSettings(10, 20, 1000, 100.0, 1e-5, 2.0, 1.0),
                50: DatmSettings(20, 40, 2000, 1000.0, 1e-5, 2.0, 1.0)}


def datm_update(c: ml_collections.ConfigDict, *, lr_y: float, threshold: float,
                max_start_initial: int, expansion_end_step: int,
                runlocal: bool = False) -> ml_collections.ConfigDict:
  """Turns a ``trajectory_config`` into DATM (docs/methods.md §1 DATM).

  Learned soft labels initialised from the experts' logits of real images the experts
  classify correctly (only those images initialise), SGD(lr_y, momentum 0.9) on them,
  soft cross-entropy in the student and in evaluation (batch 128); the start-epoch
  window grows from ``max_start_initial`` to ``max_start_epoch`` by
  ``expansion_end_step``; steps whose loss exceeds ``threshold`` are skipped. GSAM
  experts (rho 0.01, alpha 0.3) are replaced by plain SGD (jaxdd.pretrain.experts).
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


def datm_cifar10_config(data: str, ipc: int, steps: int, *, expert_epochs: int = 2,
                        runlocal: bool = False) -> ml_collections.ConfigDict:
  """DATM on CIFAR-10 at the paper's settings for ``ipc`` (1, 10 or 50; else 10's):
  syn_steps 80, ZCA, experts 100 × 100 epochs."""
  row = DATM_CIFAR10.get(ipc, DATM_CIFAR10[10])
  c = base_config(data=data, ipc=ipc)
  c.zca = 'raw'
  c = trajectory_config(c, steps=steps, syn_steps=80, expert_epochs=expert_epochs,
                        max_start_epoch=row.max_start, lr_img=row.lr_img,
                        lr_lr=row.lr_lr, num_experts=100, expert_train_epochs=100,
                        runlocal=runlocal)
  return datm_update(c, lr_y=row.lr_y, threshold=row.threshold,
                     max_start_initial=row.max_start_initial,
                     expansion_end_step=row.expansion_end_step, runlocal=runlocal)


def datm_cpu_config(data: str, ipc: int, steps: int, runlocal: bool = False
                    ) -> ml_collections.ConfigDict:
  """DATM on ``mtt_cpu_config``'s buffer, with DATM's lr_y and skip threshold of its
  CIFAR-10 row for the IPC (1, else 10). The start window: fixed at [0, 3) at IPC 1,
  else growing from [0, 2) to [0, 3) by step 200 (the paper's 10 -> 20 by 1000 of 10k,
  scaled to the 5-epoch buffer and 500 iterations)."""
  c = mtt_cpu_config(data, ipc, steps, runlocal)
  row = DATM_CIFAR10[1 if ipc == 1 else 10]
  start, expand = (0, 0) if ipc == 1 else (2, 200)
  return datm_update(c, lr_y=row.lr_y, threshold=row.threshold, max_start_initial=start,
                     expansion_end_step=expand, runlocal=runlocal)


def pad_update(c: ml_collections.ConfigDict, *, mask_ratio: float,
               runlocal: bool = False) -> ml_collections.ConfigDict:
  """Turns a DATM config into PAD (docs/methods.md §2 PAD).

  Experts trained on EL2N-scheduled data (the easiest 75 % of each class growing to all
  by epoch 20, then the easiest 10 % dropped after epoch 40 and 20 % after epoch 60),
  EL2N from 3 networks × 2 epochs (the paper gives no count: CPU-sized), and the first
  ``mask_ratio`` of the depth-ordered parameter vector masked out of both terms of the
  matching loss (the paper; the released code's 'smallest_error' variant is
  ``objective.param_mask``).
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


# ipc -> the first fraction of the depth-ordered parameters masked (PAD's CIFAR-10).
PAD_MASK_RATIO = {1: 0.0, 10: 0.5, 50: 0.25}


def pad_cifar10_config(ipc: int, steps: int, runlocal: bool = False
                       ) -> ml_collections.ConfigDict:
  """PAD on CIFAR-10: DATM's settings plus PAD's; IPC 50 uses expert_epochs 3."""
  c = datm_cifar10_config('tfds:cifar10', ipc, steps,
                          expert_epochs=3 if ipc == 50 else 2, runlocal=runlocal)
  return pad_update(c, mask_ratio=PAD_MASK_RATIO.get(ipc, 0.5), runlocal=runlocal)


def pad_cpu_config(data: str, ipc: int, steps: int, expert_schedule: str = 'none',
                   runlocal: bool = False) -> ml_collections.ConfigDict:
  """PAD's masking on ``mtt_cpu_config`` (hard labels and real init as MTT's, so a
  comparison with MTT isolates it): CIFAR-10's IPC 10 ratio, 0 at IPC 1. The experts
  are MTT's cached buffer unless ``expert_schedule='pad'``: PAD's EL2N schedule scaled
  to the 5-epoch buffer (all data by epoch 2, the easiest 10 % dropped after epoch 3
  and 20 % after epoch 4)."""
  c = mtt_cpu_config(data, ipc, steps, runlocal)
  c = pad_update(c, mask_ratio=PAD_MASK_RATIO[1 if ipc == 1 else 10], runlocal=runlocal)
  if expert_schedule != 'pad':
    c.objective.experts.schedule = 'none'
  elif not runlocal:
    c.objective.pad.update(add_end_epoch=2, remove_epochs=(3, 4))
  return c


class FredMttSettings(NamedTuple):
  """A row of FreD's TM scripts for CIFAR-10."""
  syn_steps: int
  max_start_epoch: int
  lr_lr: float
  lr_teacher: float          # the initial syn_lr


FRED_MTT_CIFAR10 = {1: FredMttSettings(50, 5, 1e-7, 0.01),
                    10: FredMttSettings(40, 15, 1e-5, 0.01),
                    50: FredMttSettings(30, 40, 1e-5, 0.001)}


def fred_mtt_cifar10_config(ipc: int, steps: int, runlocal: bool = False
                            ) -> ml_collections.ConfigDict:
  """FreD + MTT on CIFAR-10 (sdh0818/FreD TM scripts): msz 64 (16·ipc instances per
  class), the unnormalised DCT with SGD lr_freq 1e8, no ZCA, expert_epochs 2, MTT's
  buffer (experts 50 epochs)."""
  row = FRED_MTT_CIFAR10.get(ipc, FRED_MTT_CIFAR10[10])
  c = base_config(data='tfds:cifar10', ipc=ipc)
  c = trajectory_config(c, steps=steps, syn_steps=row.syn_steps, expert_epochs=2,
                        max_start_epoch=row.max_start_epoch, lr_img=1e8, lr_lr=row.lr_lr,
                        lr_teacher=row.lr_teacher, num_experts=100,
                        expert_train_epochs=50, runlocal=runlocal)
  return fred(c, msz=64, lr=1e8)


def fred_mtt_cpu_config(data: str, ipc: int, steps: int, runlocal: bool = False
                        ) -> ml_collections.ConfigDict:
  """FreD on ``mtt_cpu_config``: msz 49 of 784 coefficients (16·ipc instances per class,
  the spectrum share of the authors' 64 of 1024), their lr_freq 1e8 (TM scripts)."""
  return fred(mtt_cpu_config(data, ipc, steps, runlocal), msz=49, lr=1e8)
