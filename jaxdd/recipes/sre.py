"""Recipes of the squeeze -> recover -> relabel methods: SRe2L, CFM and EDC.

SRe2L (Yin, Xing & Shen, NeurIPS 2023; docs/methods.md §1 SRe2L; VILA-Lab/SRe2L
small_dataset), CFM (UniDD's Curriculum Frequency Matching; docs/methods.md §2 UniDD / CFM;
bdy9527/UniDD synthesis_small.py) and EDC (Shao et al., NeurIPS 2024; docs/methods.md §2
EDC; shaoshitong/EDC Branch_CIFAR_10 recover.sh) as ``pipeline='sre'`` configs
(jaxdd/sre/pipeline.py runs them). The CIFAR recipes are the authors'; ``small_config``
sizes a method for 2 CPU cores on digits, MNIST and CIFAR-10. Results and experiment
logs: docs/results/sre.md.
"""

import ml_collections

from jaxdd.config_utils import mesh_config, shrink_for_runlocal
from jaxdd.errors import ConfigError
from jaxdd.pretrain import teachers
from jaxdd.recipes.datasets import DATASETS
from jaxdd.sre import recover
from jaxdd.sre import relabel


def sre_config(*, data: str, ipc: int, method: str, teacher_sets, relabel_preset: str,
               recover_overrides=None, relabel_overrides=None, student: str = 'convnet',
               seeds: int = 5):
  """A ``pipeline='sre'`` config with every stage's fields spelled out.

  Args:
    data, ipc: as every config.
    method: 'sre2l', 'cfm' or 'edc': ``recover`` holds ``recover.default_config(method)``
      (the authors' CIFAR values) with ``recover_overrides`` over them.
    teacher_sets: a list of dicts of ``TeacherConfig`` fields, one per architecture.
    relabel_preset: a key of ``relabel.PRESETS`` ('sre2l', 'unidd', 'edc'), with
      ``relabel_overrides`` over it.
    student: the evaluated architecture (``models.get_model`` name).
    seeds: students trained per evaluation.
  """
  c = ml_collections.ConfigDict()
  c.pipeline = 'sre'
  c.data = data
  c.data_dir = ''
  c.manual_dir = ''
  c.data_download = False
  c.zca = 'none'
  c.ipc = ipc
  c.seed = 0
  c.mesh = mesh_config()
  sets = []
  for s in teacher_sets:
    t = {**teachers.TeacherConfig()._asdict(), **s}
    t['model_kw'] = dict(t['model_kw'])
    sets.append(t)
  c.teachers = ml_collections.ConfigDict(dict(cache_dir='', sets=sets))
  c.recover = ml_collections.ConfigDict(
      recover.default_config(method, **(recover_overrides or {}))._asdict())
  if relabel_preset not in relabel.PRESETS:
    raise ConfigError(f'relabel preset must be one of {", ".join(relabel.PRESETS)}, '
                      f'got {relabel_preset!r}')
  c.relabel = ml_collections.ConfigDict(
      {**relabel.PRESETS[relabel_preset]._replace(**(relabel_overrides or {}))._asdict(),
       'student': student, 'seeds': seeds})
  return c


# The papers' CIFAR squeeze recipes (CFM's Table 2: SGD 0.1, momentum 0.9, weight decay
# 5e-4, batch 128, cosine, random crop with padding 4 and flip; 200 epochs on CIFAR-10,
# 100 on CIFAR-100).
CONVNET_TEACHER = dict(model='convnet', model_kw={'norm': 'batchnorm'}, epochs=200,
                       batch_size=128, lr=0.1, crop_pad=4, flip=True)
RESNET_TEACHER = dict(model='resnet18_bn', model_kw={}, epochs=200, batch_size=128,
                      lr=0.1, crop_pad=4, flip=True)
CFM_RELABEL_BATCH = {1: 10, 10: 50, 50: 100}   # UniDD CIFAR: batch by IPC
# 5 of EDC's 8 backbones: MobileNetV2, WRN-16-2 and ShuffleNetV2-0.5 are not in
# jaxdd.models. Used round-robin, one per recover iteration, and averaged as the
# relabel teacher.
EDC_TEACHERS = [RESNET_TEACHER, CONVNET_TEACHER,
                {**CONVNET_TEACHER, 'model': 'convnetd1'},
                {**CONVNET_TEACHER, 'model': 'convnetd2'},
                {**CONVNET_TEACHER, 'model': 'convnetw32'}]


def sre2l_cifar10_config(ipc: int, runlocal: bool = False) -> ml_collections.ConfigDict:
  """SRe2L on CIFAR-10: a ResNet-18 teacher (CFM's CIFAR recipe), the authors' recover
  (``recover.default_config('sre2l')``) and relabel (preset 'sre2l'), ResNet-18
  students."""
  c = sre_config(data='tfds:cifar10', ipc=ipc, method='sre2l',
                 teacher_sets=[RESNET_TEACHER], relabel_preset='sre2l',
                 student='resnet18_bn')
  if runlocal:
    c.teachers.sets[0]['model'] = 'convnet_bn'   # a ResNet-18 is too slow for a smoke run
    c.relabel.student = 'convnet_bn'
    shrink_for_runlocal(c)
  return c


def cfm_cifar_config(data: str, ipc: int, teacher_epochs: int, runlocal: bool = False
                     ) -> ml_collections.ConfigDict:
  """CFM on CIFAR-10/100: a ConvNet-3 (batch norm) teacher trained ``teacher_epochs``
  with CFM's Table 2 recipe, the authors' recover (``recover.default_config('cfm')``),
  the UniDD relabel at batch 10 / 50 / 100 for IPC 1 / 10 / 50, ConvNet-3 students,
  the final epoch's accuracy (``readout=best_last_20`` for the UniDD code's)."""
  c = sre_config(data=data, ipc=ipc, method='cfm',
                 teacher_sets=[{**CONVNET_TEACHER, 'epochs': teacher_epochs}],
                 relabel_preset='unidd',
                 relabel_overrides=dict(batch_size=CFM_RELABEL_BATCH.get(ipc, 50),
                                        readout='final'),
                 student='convnet_bn')
  return shrink_for_runlocal(c) if runlocal else c


def edc_cifar10_config(ipc: int, runlocal: bool = False) -> ml_collections.ConfigDict:
  """EDC on CIFAR-10: ``EDC_TEACHERS`` (CFM's CIFAR recipe), the authors' recover
  (``recover.default_config('edc')``) and relabel (preset 'edc'), ResNet-18 students,
  the final epoch's accuracy (``readout=best_last_20`` for the paper's best reading)."""
  c = sre_config(data='tfds:cifar10', ipc=ipc, method='edc', teacher_sets=EDC_TEACHERS,
                 relabel_preset='edc', relabel_overrides=dict(readout='final'),
                 student='resnet18_bn')
  if runlocal:
    c.teachers.sets = c.teachers.sets[1:3]   # two narrow ConvNets for a smoke run
    c.relabel.student = 'convnet_bn'
    shrink_for_runlocal(c)
  return c


_PRESET = {'sre2l': 'sre2l', 'cfm': 'unidd', 'edc': 'edc'}   # method -> relabel preset


def small_config(method: str, data: str, ipc: int, runlocal: bool, iterations: int = 300,
                 epochs: int = 300):
  """``method`` on digits, MNIST or CIFAR-10 for 2 CPU cores: the authors' recover and
  relabel settings with ``iterations`` per batch and ``epochs`` of relabel, flips only
  on CIFAR-10, crops and the recover roll jitter sized for small images (RRC area
  ≥ 0.5; jitter = the crop padding: 4 px on 32x32 as the authors', 1 on 8x8), relabel
  batch 50, the final epoch's accuracy; EDC's multistep milestones and weight-EMA start
  scaled to ``epochs`` and three teachers used in turn (ConvNet-3, ConvNet-2, ConvNet-3
  at half width). The teachers' epochs, crop padding and width are the data's row of
  ``recipes.datasets``."""
  small = [d for d, row in DATASETS.items() if row.teacher_epochs]
  if data not in small:
    raise ConfigError(f'sre.small_config: data must be one of {", ".join(small)}, '
                      f'got {data!r}')
  ds = DATASETS[data]
  pad, flip = ds.crop_pad, ds.flip
  width = ds.teacher_width
  teacher = dict(model='convnet', model_kw={'norm': 'batchnorm', 'width': width},
                 epochs=ds.teacher_epochs, batch_size=128, lr=0.1, crop_pad=pad,
                 flip=flip)
  sets = [teacher]
  if method == 'edc':
    sets += [{**teacher, 'model': 'convnetd2'},
             {**teacher, 'model_kw': {'norm': 'batchnorm', 'width': width // 2}}]
  preset = _PRESET[method]
  relabel_overrides = dict(epochs=epochs, flip=flip, crop_padding=pad,
                           rrc_scale=(0.5, 1.0), batch_size=50, readout='final')
  if preset == 'edc':
    relabel_overrides.update(milestones=tuple(int(epochs * f) for f in (0.8, 0.9, 0.95)),
                             ema_start_epoch=int(epochs * 0.8))
  recover_overrides = dict(iterations=iterations, flip=flip)
  # SRe2L's and CFM's roll of up to 4 px on 32x32, scaled as the crop padding is: 4 on
  # CIFAR-10, 2 on MNIST, 1 on 8x8 digits (EDC does not roll).
  if method != 'edc':
    recover_overrides['jitter'] = pad
  if method != 'sre2l':
    recover_overrides.update(crop_scale=(0.5, 1.0))
  c = sre_config(data=data, ipc=ipc, method=method, teacher_sets=sets,
                 relabel_preset=preset, relabel_overrides=relabel_overrides,
                 recover_overrides=recover_overrides, student='convnet_bn')
  return shrink_for_runlocal(c) if runlocal else c
