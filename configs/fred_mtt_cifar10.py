r"""FreD + MTT on CIFAR-10 (Shin, Shin & Moon, NeurIPS 2023; METHODS.md §2 FreD).

Paper (Table 1): FreD+TM 60.6 % (IPC 1), 70.3 % (IPC 10), 75.8 % (IPC 50), ConvNet-3.

    python -m jaxdd.launch --config=configs/fred_mtt_cifar10.py:1 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). Settings (sdh0818/FreD TM scripts, METHODS.md):
msz 64 (16·ipc instances per class), the authors' unnormalised DCT with SGD lr_freq 1e8,
momentum 0.5; 15k iterations; no ZCA; expert_epochs 2; experts 50 epochs (MTT's
buffer settings); per IPC (1 / 10 / 50): syn_steps 50 / 40 / 30, max_start_epoch
5 / 15 / 40, lr_lr 1e-7 / 1e-5 / 1e-5, initial syn_lr 0.01 / 0.01 / 0.001.
"""

import ml_collections

from jaxdd.config_utils import base_config, parse_arg, trajectory_config

# ipc -> (syn_steps, max_start_epoch, lr_lr, lr_teacher)
TABLE = {1: (50, 5, 1e-7, 0.01), 10: (40, 15, 1e-5, 0.01), 50: (30, 40, 1e-5, 0.001)}


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1, steps=15000, runlocal=False)
  syn_steps, max_start, lr_lr, lr_teacher = TABLE.get(arg.ipc, TABLE[10])
  c = base_config(data='tfds:cifar10', ipc=arg.ipc)
  c = trajectory_config(c, steps=arg.steps, syn_steps=syn_steps, expert_epochs=2,
                        max_start_epoch=max_start, lr_img=1e8, lr_lr=lr_lr,
                        lr_teacher=lr_teacher, num_experts=100, expert_train_epochs=50,
                        runlocal=arg.runlocal)
  c.parameterization = ml_collections.ConfigDict(
      dict(name='fred', msz=64, dct_norm=None, learn_labels=False))
  return c
