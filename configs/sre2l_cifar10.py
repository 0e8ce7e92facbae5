r"""SRe2L on CIFAR-10 (Yin, Xing & Shen, NeurIPS 2023; METHODS.md §1 SRe2L). IPC by argument.

Paper (as reported by EDC, Table 1; ResNet-18): 27.2 % (IPC 10), 47.5 % (IPC 50).

    python -m jaxdd.launch --config=configs/sre2l_cifar10.py:10 \
        --config.data=npz:$HOME/.cache/jaxdd/cifar10.npz

jaxdd: the paper's settings not measured (a GPU run); the CPU-sized setting's reading is
in the last paragraph. The squeeze -> recover -> relabel pipeline (jaxdd/sre.py).
Squeeze: a ResNet-18 (CIFAR stem, batch norm) trained 200 epochs with
SGD 0.1, momentum 0.9, weight decay 5e-4, batch 128, cosine, random crop (pad 4) and
flip (CFM's Table 2 recipe for CIFAR; cached in ~/.cache/jaxdd/teachers). Recover
(VILA-Lab/SRe2L small_dataset): noise init, Adam 0.25 β (0.5, 0.9), cosine, 1000
iterations per batch of one image per class, roll jitter 4, CE + 0.01·Σ BN-statistic
distances with the first BN ×10. Relabel: teacher KL at T = 30 (batchmean, no T²),
mixup 0.8, AdamW 1e-3 wd 0.01, cosine, 400 epochs, ResNet-18 students, 5 seeds,
final-epoch accuracy.

``:ipc=10,cpu`` is the CPU-sized setting of ``sre.small_config`` on CIFAR-10 (ConvNet-3
w64 batch-norm teacher trained 10 epochs with crops (pad 4) and flips, 300 recover
iterations per batch, 300 relabel epochs at batch 50, ConvNet-3 students); the random
real subset is scored with the same relabel. jaxdd, 2 CPU cores, ``:ipc=10,cpu``:
33.93 ± 1.01 % vs the random subset 50.74 ± 0.91 % (teacher 78.91 %; 39 min). With the
authors' 1000 recover iterations (``--config.recover.iterations=1000``): 31.77 ± 1.28 %
vs 50.81 ± 0.90 %, so the gap to real images is not from stopping the recover early.
"""

from jaxdd.config_utils import parse_arg
from jaxdd.sre.pipeline import RESNET_TEACHER, shrink_for_runlocal, small_config, sre_config


def get_config(arg=None):
  arg = parse_arg(arg, ipc=10, runlocal=False, cpu=False)
  if arg.cpu:
    return small_config('sre2l', 'tfds:cifar10', arg.ipc, arg.runlocal)
  c = sre_config(data='tfds:cifar10', ipc=arg.ipc, method='sre2l',
                 teacher_sets=[RESNET_TEACHER], relabel_preset='sre2l',
                 student='resnet18_bn')
  if arg.runlocal:
    c.teachers.sets[0]['model'] = 'convnet_bn'   # a ResNet-18 is too slow for a smoke run
    c.relabel.student = 'convnet_bn'
    shrink_for_runlocal(c)
  return c
