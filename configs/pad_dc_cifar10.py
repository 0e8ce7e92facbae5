r"""PAD's two modules under DC on CIFAR-10 (PAD appendix, Tables 6a and 7a). IPC by argument.

    python -m jaxdd.launch --config=configs/pad_dc_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

configs/dc_cifar10.py plus, as the paper's appendix tests them on DC:
* filtering information extraction (``real_filter``, data/real_filter.py): the real
  batches whose gradients are matched come from the training set without the hardest
  (IPC < 100) or easiest (IPC >= 100) images of each class by EL2N; ratios at the best of
  Table 6a: 20 % hard at IPC 1 (29.1 % vs DC's 27.8 %), 25 % hard at IPC 10 (46.3 % vs
  44.7 %), 10 % easy at IPC 500 (71.9 % vs 71.4 %);
* filtering information embedding (``objective.param_mask='depth'``,
  objectives/selection.py): the first ``mask_ratio`` of the depth-ordered parameter
  vector leaves both gradients of the matching distance; 25 % at IPC 10 (Table 7a:
  45.2 % vs 44.9 %), 75 % at IPC 500 (73.4 %), off at IPC 1 (not reported).
The paper reports each module alone; ``fiex_only``/``fiem_only`` in the argument turn
the other off; an IPC outside DCrepo's table (e.g. 500) needs ``outer_loop=O,inner_loop=I``.
EL2N: 3 ConvNet-3 trained 2 epochs (difficulty.el2n_scores), cached.

jaxdd: not measured on CIFAR-10 (a GPU run, as configs/dc_cifar10.py).
"""

import os

from jaxdd.config_utils import load_config_file, pad_alignment, parse_arg


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, iterations=1000, outer_loop=0, inner_loop=0,
                  fiex_only=False, fiem_only=False, runlocal=False)
  c = load_config_file(os.path.join(os.path.dirname(__file__), 'dc_cifar10.py'),
                       f'ipc={arg.ipc},iterations={arg.iterations},outer_loop={arg.outer_loop},'
                       f'inner_loop={arg.inner_loop},runlocal={arg.runlocal}')
  return pad_alignment(c, table='dc', fiex=not arg.fiem_only, fiem=not arg.fiex_only,
                       runlocal=arg.runlocal)
