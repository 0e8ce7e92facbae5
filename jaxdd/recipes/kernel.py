"""Recipes of the kernel methods: KIP and FRePo.

KIP (Nguyen, Chen & Lee, ICLR 2021 / Nguyen, Novak, Xiao & Lee, NeurIPS 2021;
docs/methods.md §1 KIP; google-research kip/KIP.ipynb) and FRePo (Zhou, Nezhadarya & Ba,
NeurIPS 2022; docs/methods.md §1 FRePo; yongchao97/FRePo). Both learn labels, which are
regression targets: jaxdd evaluates them with the MSE loss (a ConvNet trained with SGD,
not the papers' kernel or Adam evaluations). The CIFAR-10 recipes are the references';
the ``*_cpu_config`` ones are sized for 2 CPU cores (MNIST, digits). Results and
experiment logs: docs/results/kernel.md.
"""

import ml_collections

from jaxdd.config_utils import base_config, shrink_for_runlocal
from jaxdd.recipes.datasets import dataset


def kip_update(c: ml_collections.ConfigDict, *, batch_real: int, kernel_arch: str
               ) -> ml_collections.ConfigDict:
  """KIP's objective and optimizers (docs/methods.md §1 KIP; configs kip_*).

  Kernel ridge regression with neural-tangents' NTK (W_std √2, b_std 0.1, depth 3) of
  ``kernel_arch``, trace-scaled ridge 1e-6, centred one-hot targets; Adam 0.04 on the
  images and the learned labels; MSE evaluation of those labels. The NTK runs in
  float32 (the notebook enables x64, which crashes jaxlib >= 0.8 on the conv kernel:
  docs/design.md) and needs the ``nt`` extra.
  """
  c.parameterization.learn_labels = True
  c.objective = ml_collections.ConfigDict(dict(
      name='kip', batch_real=batch_real, kernel='nt_ntk', reg=1e-6, syn_labels='center',
      kernel_arch=kernel_arch, kernel_depth=3, W_std=2 ** 0.5, b_std=0.1))
  c.optim.images = ml_collections.ConfigDict(dict(name='adam', lr=0.04))
  c.optim.labels = ml_collections.ConfigDict(dict(name='adam', lr=0.04))
  c.eval.loss = 'mse'   # the learned labels are regression targets, not probabilities
  return c


def kip_cifar10_config(ipc: int, steps: int, runlocal: bool = False
                       ) -> ml_collections.ConfigDict:
  """KIP on CIFAR-10 at the notebook's settings: the infinite-width ConvNet-3 NTK, a
  class-balanced real batch of 5000 (500 per class), the KIP/FRePo ZCA."""
  c = base_config(data='tfds:cifar10', ipc=ipc)
  c.zca = 'krr'
  c.steps = steps
  c.checkpoint_every = 200
  c.log_every = 20
  kip_update(c, batch_real=500, kernel_arch='conv')
  if runlocal:
    # The conv NTK of 32x32 images is too heavy for a smoke run: the FC kernel, a
    # handful of real images, no ZCA.
    c.objective.update(batch_real=4, kernel_arch='fc')
    c.zca = 'none'
    shrink_for_runlocal(c)
  return c


def kip_cpu_config(data: str, ipc: int, steps: int, runlocal: bool = False
                   ) -> ml_collections.ConfigDict:
  """KIP for a CPU: the fully connected NTK of depth 3 (KIP's FC networks; the
  infinite-width ConvNet kernel holds a (H·W)² covariance per image pair, gigabytes at
  28x28), a target batch of 64 per class (the notebook's is 5000), no ZCA, the data's
  CPU-sized evaluation."""
  c = base_config(data=data, ipc=ipc)
  c.steps = steps
  c.checkpoint_every = 200
  c.log_every = 20
  kip_update(c, batch_real=64, kernel_arch='fc')
  c.eval.epochs = dataset(data).cpu_eval_epochs
  if runlocal:
    c.objective.update(batch_real=8)
    shrink_for_runlocal(c)
  return c


def frepo_update(c: ml_collections.ConfigDict, *, batch_real: int, steps: int
                 ) -> ml_collections.ConfigDict:
  """FRePo's objective and optimizers (docs/methods.md §1 FRePo; configs frepo_*).

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


def _frepo_runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c.objective.update(batch_real=8, pool_size=2, max_age=2)
  shrink_for_runlocal(c)
  c.optim.images.cosine_decay_steps = c.optim.labels.cosine_decay_steps = c.steps
  return c


def frepo_cifar10_config(ipc: int, steps: int, runlocal: bool = False
                         ) -> ml_collections.ConfigDict:
  """FRePo on CIFAR-10 at the reference's settings: 500k steps, a real batch of 1024
  (~102 per class), the KIP/FRePo ZCA."""
  c = base_config(data='tfds:cifar10', ipc=ipc)
  c.zca = 'krr'
  c.steps = steps
  c.checkpoint_every = 1000
  c.log_every = 100
  frepo_update(c, batch_real=102, steps=steps)
  if runlocal:
    c.zca = 'none'
    _frepo_runlocal(c)
  return c


def frepo_cpu_config(data: str, ipc: int, steps: int, runlocal: bool = False
                     ) -> ml_collections.ConfigDict:
  """FRePo for a CPU: CPU-sized ``steps``, a real batch of 64 per class, no ZCA, the
  data's CPU-sized evaluation."""
  c = base_config(data=data, ipc=ipc)
  c.steps = steps
  c.checkpoint_every = 200
  c.log_every = 20
  frepo_update(c, batch_real=64, steps=steps)
  c.eval.epochs = dataset(data).cpu_eval_epochs
  return _frepo_runlocal(c) if runlocal else c
