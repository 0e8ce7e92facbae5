r"""FreD + MTT on MNIST, sized for a CPU (METHODS.md §2 FreD; FreD reports no MNIST TM run).

    python -m jaxdd.launch --config=configs/fred_mtt_mnist.py:1 \
        --config.data=npz:../shared/data/mnist.npz

jaxdd: not yet measured. MTT's CPU-sized settings (configs/mtt_mnist.py: the cached
10 experts x 5 epochs buffer, expert_epochs 2, max_start_epoch 3, syn_steps 20 at IPC 1
/ 10 at IPC 10, lr_lr 1e-7 / 1e-5) with FreD's parameterization: msz 49 of the 784
coefficients (16·ipc instances per class, the share of the spectrum of the authors'
64 of 1024 on CIFAR; see configs/fred_dm_mnist.py for why not 64, and for msz 98,
which beat 49 under DM), the authors'
unnormalised DCT and SGD lr_freq 1e8 with momentum 0.5 (their TM scripts). On MNIST
under DM the authors' DM rate (1e6) already grew the decoded instances to pixel std
8.4 where 1e5 worked better (README): lower ``--config.optim.images.lr`` by 10-100x
if the decoded images blow up here too.
"""

import ml_collections

from jaxdd.config_utils import mtt_mnist_config, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=500, runlocal=False)
  c = mtt_mnist_config(arg.ipc, arg.steps, arg.runlocal)
  c.parameterization = ml_collections.ConfigDict(
      dict(name='fred', msz=49, dct_norm=None, learn_labels=False))
  c.optim.images = ml_collections.ConfigDict(dict(name='sgd', lr=1e8, momentum=0.5))
  return c
