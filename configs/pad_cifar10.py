r"""PAD on CIFAR-10 (Li et al., 2024; METHODS.md §2 PAD). IPC 1 / 10 / 50.

Paper: 47.2 % (IPC 1), 67.4 % (IPC 10), 77.0 % (IPC 50), ConvNet-3.

    python -m jaxdd.launch --config=configs/pad_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: not measured on CIFAR-10 (a GPU run). Settings: DATM's (configs/datm_cifar10.py)
plus PAD's two changes: experts trained on EL2N-scheduled data (initial ratio 0.75,
all data by epoch 20, the easiest 10 % dropped after epoch 40 and 20 % after epoch 60;
METHODS.md reads the removal as 10 % then 20 %, the paper's Table 10 as 10 % twice),
EL2N from 3 networks x 2 epochs (the paper gives no count: CPU-sized), and the first
0 / 50 / 25 % of the depth-ordered parameters (IPC 1 / 10 / 50) masked out of the
matching loss (the paper's variant; ``objective.param_mask=smallest_error`` is the
released code's). IPC 50 uses expert_epochs 3.
"""

from jaxdd.config_utils import datm_cifar10_config, pad_update, parse_arg

MASK_RATIO = {1: 0.0, 10: 0.5, 50: 0.25}   # ipc -> first fraction of parameters masked


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=10000, runlocal=False)
  c = datm_cifar10_config('tfds:cifar10', arg.ipc, arg.steps,
                          expert_epochs=3 if arg.ipc == 50 else 2, runlocal=arg.runlocal)
  return pad_update(c, mask_ratio=MASK_RATIO.get(arg.ipc, 0.5), runlocal=arg.runlocal)
