r"""PAD's two modules under DM on CIFAR-10 (PAD appendix, Tables 6b and 7b). IPC by argument.

    python -m jaxdd.launch --config=configs/pad_dm_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

configs/dm_cifar10.py plus, as the paper's appendix tests them on DM:
* filtering information extraction (``real_filter``, data/real_filter.py): the real
  batches come from the training set without the hardest (IPC < 100) or easiest
  (IPC >= 100) images of each class by EL2N; ratios at the best of Table 6b: 50 % hard
  at IPC 1 (29.2 % vs DM's 26.4 %), 20 % hard at IPC 10 (50.3 % vs 48.4 %), 15 % easy
  at IPC 500 (76.3 % vs 75.1 %);
* filtering information embedding (``objective.param_mask='depth'``,
  objectives/selection.py): every block's output is matched, without the shallowest
  ``mask_ratio`` of the concatenated vector; 25 % at IPC 10 (Table 7b: 49.5 % vs 48.9 %),
  75 % at IPC 500 (76.3 %), off at IPC 1 (not reported).
The paper reports each module alone; ``fiex_only``/``fiem_only`` in the argument turn
the other off. EL2N: 3 ConvNet-3 trained 2 epochs (difficulty.el2n_scores), cached.

jaxdd: not measured on CIFAR-10 (a GPU run: 20k iterations); see configs/pad_dm_digits.py.
"""

import os

from jaxdd.config_utils import load_config_file, pad_alignment, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, steps=20000, fiex_only=False, fiem_only=False,
                  runlocal=False)
  c = load_config_file(os.path.join(os.path.dirname(__file__), 'dm_cifar10.py'),
                       f'ipc={arg.ipc},steps={arg.steps},runlocal={arg.runlocal}')
  return pad_alignment(c, table='dm', fiex=not arg.fiem_only, fiem=not arg.fiex_only,
                       runlocal=arg.runlocal)
