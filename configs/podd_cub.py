r"""PoDD on CUB-200-2011 at 32×32 (Shul, Horwitz & Hoshen 2024; docs/methods.md §2 PoDD).

    tfds build caltech_birds2011 --data_dir=$HOME/tensorflow_datasets   # with internet
    python -m jaxdd.launch --config=configs/podd_cub.py:1.0 \
        --config.data_dir=$HOME/tensorflow_datasets

jaxdd: not yet measured (a GPU run). Settings: paper §5.1 and the ``AsafShul/PoDD`` README
command for CUB200; offline, ``--config.manual_dir=DIR_WITH_THE_ARCHIVES``.
Paper (Tables 1 and 2, ConvNet-3): 16.2 ± 0.3 % at IPC 1.0, 14.8 ± 0.5 at 0.3 (RaT-BPTT
at IPC 1: 13.8 ± 0.3; the full data set: 20.1 ± 0.3).
Results and experiment log: docs/results/podd.md
"""

from jaxdd.config_utils import parse_arg
from jaxdd.recipes import unrolled


def get_config(arg=None):
  arg = parse_arg(arg, ipc=1.0, steps=16000, runlocal=False)
  return unrolled.podd_cub_config(arg.ipc, arg.steps, arg.runlocal)
