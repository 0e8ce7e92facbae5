"""Simulated pod: what each hot step costs per device on 1 to 64 devices, compiled only.

For every requested step and device count N, a subprocess with N simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``, set before jax is imported)
builds the step exactly as jaxdd does, enters the jaxdd mesh
(``jaxdd.sharding.make_mesh`` of the config's ``mesh`` section, or ``--mesh``;
``jax.set_mesh``), lowers and compiles it, and never runs it. From the compiled program:

  * ``flops_per_device``: XLA's cost analysis of the SPMD-partitioned (per-device)
    program. XLA counts the body of a loop (``lax.scan``, ``fori_loop``, ``lax.map``)
    once, not once per iteration: a training run's flops are those of one step.
  * ``collective_bytes``: the summed output bytes of every all-reduce, all-gather,
    reduce-scatter, all-to-all and collective-permute instruction of the per-device
    HLO (``collective_bytes_of``; asynchronous ``-start``/``-done`` pairs once); also
    counted once per loop body.
  * ``memory_per_device``: XLA's buffer assignment, argument + output + temp − alias
    bytes (the parts are in ``memory``).
  * ``compile_seconds``: ``Lowered.compile()`` on this host (the persistent
    compilation cache is off in the workers); ``lower_seconds``: building the step's
    inputs (data, ``distill.setup``), tracing and lowering; ``setup_seconds``: the
    config and the mesh.

Steps (``--steps``): ``eval`` (``evaluate._train_and_test``, 8 seeds, a 2-epoch
protocol), ``experts`` (``pretrain.experts._epoch_all``, one epoch of every expert),
``dm``, ``dc``, ``mtt``, ``ratbptt``, ``kip``, ``podd``, ``frepo`` (the step of
``distill.setup(config)`` for the config of ``configs/``), ``cfm`` (the jitted recover
batch of ``sre.recover.make_batch_fn``). Shapes: ``--scale=small`` (MNIST, the CPU-sized
configs) or ``paper`` (CIFAR-10 IPC 10 and 50, CIFAR-100 for DM and MTT, the papers'
settings; MTT with syn_steps 80). Data are random stand-ins of the right shapes:
a step's program does not depend on pixel values (``_cases`` lists what each one is).

    python -m benchmarks.scaling --devices=1,8 --scale=small --steps=eval,experts,dm,mtt \
        --out=/tmp/scaling_small.json
    python -m benchmarks.scaling --table benchmarks/results/scaling_small.json

Writes ``{"records": [...], "provenance": {...}}`` (one record per step, shape and
device count, ``RECORD_FIELDS``) after every device count, so an interrupted sweep keeps
what it measured; ``--table FILE`` prints the markdown tables of benchmarks/README.md.
"""

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import inspect
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from benchmarks import machine
from jaxdd import data as data_lib
from jaxdd import distill
from jaxdd import evaluate
from jaxdd import models
from jaxdd import sharding
from jaxdd.config_utils import load_config_file, set_fields
from jaxdd.objectives import trajectory_matching
from jaxdd.pretrain import expert_store, experts, teachers
from jaxdd.recipes import matching, trajectory
from jaxdd.sre import pipeline, recover
from jaxdd.train import members

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, 'configs')
STEPS = ('eval', 'experts', 'dm', 'dc', 'mtt', 'ratbptt', 'kip', 'podd', 'frepo', 'cfm')
SCALES = ('small', 'paper')
SEED_LOOPS = ('vmap', 'map', 'auto')

# ----------------------------------------------------------------------------------
# Reading a compiled program: collectives in the HLO text, cost and memory analyses.
# ----------------------------------------------------------------------------------

COLLECTIVES = ('all-reduce', 'all-gather', 'reduce-scatter', 'all-to-all',
               'collective-permute')
# Bytes per element. Sub-byte types (s4, u4) count as one byte: XLA's CPU and GPU
# backends store them one per byte.
DTYPE_BYTES = {'pred': 1, 's4': 1, 'u4': 1, 's8': 1, 'u8': 1, 'f8e4m3fn': 1, 'f8e5m2': 1,
               'f8e4m3': 1, 'f8e4m3b11fnuz': 1, 'f8e4m3fnuz': 1, 'f8e5m2fnuz': 1,
               'f8e3m4': 1, 's16': 2, 'u16': 2, 'f16': 2, 'bf16': 2, 's32': 4, 'u32': 4,
               'f32': 4, 's64': 8, 'u64': 8, 'f64': 8, 'c64': 8, 'c128': 16, 'token': 0}
_LHS = re.compile(r'^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*')
_ARRAY = re.compile(r'([a-z][a-z0-9]*)\[([^\]]*)\]')


def _balanced_end(text: str, start: int) -> int:
  """Index just past the bracket group opening at ``text[start]`` ((), [] or {})."""
  depth = 0
  for i in range(start, len(text)):
    c = text[i]
    if c in '([{':
      depth += 1
    elif c in ')]}':
      depth -= 1
      if depth == 0:
        return i + 1
  raise ValueError(f'unbalanced brackets in {text[start:start + 80]!r}')


def parse_instruction(line: str) -> tuple[str, str] | None:
  """(shape, opcode) of an HLO instruction line ``%name = SHAPE opcode(...)``, else
  None (computation headers, braces, blank lines)."""
  m = _LHS.match(line)
  if not m:
    return None
  i = m.end()
  if i < len(line) and line[i] == '(':         # a tuple shape, possibly nested
    end = _balanced_end(line, i)
  else:                                         # f32[128,10]{1,0} up to the space
    end = i
    while end < len(line) and not line[end].isspace():
      if line[end] in '[{(':
        end = _balanced_end(line, end)
      else:
        end += 1
  shape = line[i:end]
  op = re.match(r'\s*([a-z][a-z0-9\-]*)\(', line[end:])
  return (shape, op.group(1)) if op else None


def shape_bytes(shape: str) -> int:
  """Bytes of every array in an HLO shape (a tuple's leaves summed); layouts ignored.

  Raises:
    ValueError: an element type missing from ``DTYPE_BYTES``.
  """
  total = 0
  for dtype, dims in _ARRAY.findall(re.sub(r'\{[^{}]*\}', '', shape)):
    if dtype not in DTYPE_BYTES:
      raise ValueError(f'unknown HLO element type {dtype!r} in {shape!r}')
    sizes = [int(d.lstrip('<=')) for d in dims.split(',') if d.strip()]
    total += DTYPE_BYTES[dtype] * math.prod(sizes)
  return total


def tuple_elements(shape: str) -> list[str]:
  """The top-level elements of a tuple shape ``(a, b, ...)``; ``[shape]`` otherwise."""
  if not shape.startswith('('):
    return [shape]
  inner, out, depth, start = shape[1:-1], [], 0, 0
  for i, c in enumerate(inner):
    if c in '([{':
      depth += 1
    elif c in ')]}':
      depth -= 1
    elif c == ',' and depth == 0:
      out.append(inner[start:i].strip())
      start = i + 1
  out.append(inner[start:].strip())
  return [e for e in out if e]


def collective_bytes_of(hlo_text: str) -> tuple[int, dict]:
  """(total bytes, {opcode: {'count', 'bytes'}}) of the collectives in an HLO module.

  A synchronous collective counts its output shape (a tuple's leaves summed). An
  asynchronous one counts once, at its ``-start``: ``all-reduce-start``'s shape is its
  result; ``all-gather-start`` and ``collective-permute-start`` return (operands,
  results[, context]), of which the results count. ``-done`` instructions and
  ``async-start`` wrappers are not counted (the wrapped computation's collective is).
  A collective inside a loop body is counted once, as XLA's flops are.
  """
  per_op: dict[str, dict] = {}
  for op, nbytes, _, _ in collective_instructions(hlo_text):
    entry = per_op.setdefault(op, {'count': 0, 'bytes': 0})
    entry['count'] += 1
    entry['bytes'] += nbytes
  return sum(e['bytes'] for e in per_op.values()), dict(sorted(per_op.items()))


def collective_instructions(hlo_text: str) -> list[tuple[str, int, str, str]]:
  """(collective, bytes, shape, jax op_name) of every counted collective instruction
  (the counting rules of ``collective_bytes_of``), in the order of the text."""
  out = []
  for line in hlo_text.splitlines():
    parsed = parse_instruction(line)
    if parsed is None:
      continue
    shape, op = parsed
    base = op[:-len('-start')] if op.endswith('-start') else op
    if base not in COLLECTIVES:
      continue
    if op.endswith('-start') and base != 'all-reduce':
      parts = tuple_elements(shape)
      nbytes = shape_bytes(parts[1] if len(parts) >= 2 else shape)
    else:
      nbytes = shape_bytes(shape)
    name = re.search(r'op_name="([^"]*)"', line)
    out.append((base, nbytes, re.sub(r'\{[^{}]*\}', '', shape),
                name.group(1) if name else ''))
  return out


def largest_collectives(hlo_text: str, n: int = 5) -> list[dict]:
  """The ``n`` largest collectives: what crosses devices, and which jax op asked."""
  top = sorted(collective_instructions(hlo_text), key=lambda c: -c[1])[:n]
  return [{'op': op, 'bytes': b, 'shape': shape, 'op_name': name[:200]}
          for op, b, shape, name in top]


def cost_fields(compiled) -> dict:
  """flops, transcendentals and bytes accessed of the per-device program (XLA's cost
  analysis: a dict, or in some jax versions a list with one dict per program)."""
  try:
    cost = compiled.cost_analysis()
  except Exception:   # a backend without cost analysis
    cost = None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  cost = cost or {}

  def get(key):
    return float(cost[key]) if key in cost else None

  return {'flops_per_device': get('flops'),
          'transcendentals_per_device': get('transcendentals'),
          'bytes_accessed_per_device': get('bytes accessed')}


MEMORY_PARTS = ('argument', 'output', 'temp', 'alias', 'generated_code')


def memory_fields(compiled) -> dict:
  """``memory_per_device`` = argument + output + temp − alias bytes of XLA's buffer
  assignment, and the parts (``memory``)."""
  try:
    ma = compiled.memory_analysis()
  except Exception:
    ma = None
  if ma is None:
    return {'memory_per_device': None, 'memory': None}
  parts = {f'{p}_bytes': int(getattr(ma, f'{p}_size_in_bytes', 0) or 0)
           for p in MEMORY_PARTS}
  total = (parts['argument_bytes'] + parts['output_bytes'] + parts['temp_bytes']
           - parts['alias_bytes'])
  return {'memory_per_device': total, 'memory': parts}


def measure(compiled) -> dict:
  """Every measured field of a compiled program except timings."""
  text = compiled.as_text()
  total, per_op = collective_bytes_of(text)
  return {**cost_fields(compiled), 'collective_bytes': total, 'collectives': per_op,
          'largest_collectives': largest_collectives(text), **memory_fields(compiled)}


# ----------------------------------------------------------------------------------
# Records.
# ----------------------------------------------------------------------------------

# field -> accepted types (None: the field may be null, on an error record).
RECORD_FIELDS = {
    'step': (str,), 'devices': (int,), 'scale': (str,), 'shape': (str,),
    'mesh': (dict, None), 'flops_per_device': (float, None),
    'transcendentals_per_device': (float, None), 'bytes_accessed_per_device': (float, None),
    'collective_bytes': (int, None), 'collectives': (dict, None),
    'largest_collectives': (list, None),
    'memory_per_device': (int, None), 'memory': (dict, None),
    'compile_seconds': (float, None), 'lower_seconds': (float, None),
    'setup_seconds': (float, None), 'what': (str,), 'config': (str, None),
    'stand_in': (dict,), 'options': (dict,), 'error': (str, None),
}
MEASURED = ('mesh', 'flops_per_device', 'collective_bytes', 'memory_per_device',
            'compile_seconds')


def make_record(step: str, devices: int, scale: str, shape: str, **fields) -> dict:
  """A record with every ``RECORD_FIELDS`` key (absent ones None, stand_in/options {})."""
  rec = {'step': step, 'devices': devices, 'scale': scale, 'shape': shape}
  for k in RECORD_FIELDS:
    if k not in rec:
      rec[k] = fields.pop(k, {} if k in ('stand_in', 'options') else
                          ('' if k == 'what' else None))
  if fields:
    raise ValueError(f'unknown record fields: {", ".join(sorted(fields))}')
  return rec


def check_record(rec: dict) -> None:
  """Raises ValueError when ``rec`` is not a record: a missing, extra or mistyped field,
  a measured field null without an error, a mesh that does not cover the devices."""
  missing = set(RECORD_FIELDS) - set(rec)
  extra = set(rec) - set(RECORD_FIELDS)
  if missing or extra:
    raise ValueError(f'record fields: missing {sorted(missing)}, unknown {sorted(extra)}')
  for k, kinds in RECORD_FIELDS.items():
    v = rec[k]
    if v is None:
      if None not in kinds:
        raise ValueError(f'record field {k!r} is null')
      continue
    types = tuple(t for t in kinds if t is not None)
    if isinstance(v, bool) or not isinstance(v, types):
      if not (float in types and isinstance(v, int) and not isinstance(v, bool)):
        raise ValueError(f'record field {k!r} = {v!r} is not {types}')
  if rec['step'] not in STEPS or rec['scale'] not in SCALES or rec['devices'] < 1:
    raise ValueError(f'record of unknown step/scale/devices: {rec["step"]!r}, '
                     f'{rec["scale"]!r}, {rec["devices"]}')
  if rec['error'] is None:
    nulls = [k for k in MEASURED if rec[k] is None]
    if nulls:
      raise ValueError(f'record without error has null {nulls}')
    if math.prod(rec['mesh'].values()) != rec['devices']:
      raise ValueError(f'mesh {rec["mesh"]} does not cover {rec["devices"]} devices')


# ----------------------------------------------------------------------------------
# The cases: what is compiled for each step and scale.
# ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Data:
  """A stand-in data set's shape: name (the npz stem: known stems get the published
  normalisation), image shape, classes."""
  name: str
  label: str
  image_shape: tuple
  classes: int


MNIST = Data('mnist', 'MNIST', (28, 28, 1), 10)
CIFAR10 = Data('cifar10', 'CIFAR-10', (32, 32, 3), 10)
CIFAR100 = Data('cifar100', 'CIFAR-100', (32, 32, 3), 100)
CUB = Data('cub32', 'CUB-200 32x32', (32, 32, 3), 200)


@dataclasses.dataclass(frozen=True)
class Case:
  """One (step, scale, shape): ``config()`` gives the config (or None: the mesh
  defaults), ``lower(config, mesh, opts, tmp)`` the ``jax.stages.Lowered`` and the
  record's extra fields; both run in the worker."""
  step: str
  scale: str
  shape: str
  config: Callable[[], Any]
  lower: Callable[..., tuple]
  config_name: str | None = None   # recorded as the record's ``config``
  slow: bool = False   # compiled after the others of its worker (minutes at 1 device)


def _config_file(name: str, arg: str | None):
  return lambda: load_config_file(os.path.join(CONFIGS, name), arg)


def _recipe(fn, *args, **kw):
  return lambda: fn(*args, **kw)


_NPZ_CACHE: dict = {}


def stand_in_npz(data: Data, per_class: int, tmp: str) -> str:
  """``npz:PATH`` of random uint8 images of ``data``'s shape, ``per_class`` per class
  (``benchmarks.common.random_npz``), written once per worker under ``tmp``."""
  key = (data, per_class)
  if key not in _NPZ_CACHE:
    spec = common.random_npz(data.name, data.image_shape, per_class, data.classes)
    path = spec[len('npz:'):]
    dest = os.path.join(tmp, f'{len(_NPZ_CACHE)}', f'{data.name}.npz')
    os.makedirs(os.path.dirname(dest))
    shutil.move(path, dest)
    os.rmdir(os.path.dirname(path))
    _NPZ_CACHE[key] = 'npz:' + dest
  return _NPZ_CACHE[key]


def _sds(shape, dtype=jnp.float32):
  return jax.ShapeDtypeStruct(tuple(shape), dtype)


def eval_case(scale: str, data: Data, ipc: int, seeds: int = 8, epochs: int = 2,
              test: int = 10000) -> Case:
  """The evaluation protocol (``evaluate._train_and_test``): ``seeds`` ConvNet-3
  networks trained ``epochs`` epochs on IPC x classes images with DSA, then scored on
  the ``test`` images. Inputs are abstract (``jax.ShapeDtypeStruct``)."""
  def lower(config, mesh, opts, tmp):
    shape = data.image_shape
    model = models.get_model('convnet', data.classes, image_shape=shape)
    cfg = evaluate.EvalConfig(epochs=epochs)
    keys = members.member_keys(jax.random.key(0), seeds)
    n = data.classes * ipc
    lowered = evaluate._train_and_test.lower(
        model, shape, cfg, opts['seed_loop'], keys, _sds((n,) + shape),
        _sds((n, data.classes)), _sds((test,) + shape), _sds((test,), jnp.int32))
    return lowered, dict(what='jaxdd.evaluate._train_and_test', stand_in={
        'inputs': 'jax.ShapeDtypeStruct', 'eval_epochs': epochs, 'test_images': test})
  return Case('eval', scale, f'{data.label} IPC {ipc}, {seeds} seeds',
              lambda: None, lower)


def experts_case(scale: str, data: Data, config: Callable, config_name: str,
                 num_train: int) -> Case:
  """One epoch of every expert of an MTT config's ``objective.experts`` section
  (``pretrain.experts._epoch_all``, as ``train_experts`` calls it) on ``num_train``
  abstract training images."""
  def lower(config, mesh, opts, tmp):
    shape = data.image_shape
    cfg, _ = trajectory_matching.parse_experts(config.objective.experts, config.seed)
    cfg = cfg._replace(seed_loop=opts['seed_loop'])
    model = models.from_config(config.model, data.classes, shape)
    init_fn = experts.make_init_fn(model, shape, cfg)
    states = jax.tree_util.tree_map(lambda s: _sds((cfg.num_experts,) + s.shape, s.dtype),
                                    jax.eval_shape(init_fn, jax.random.key(0)))
    i32 = lambda *s: _sds(s, jnp.int32)
    static = dict(model=model, image_shape=shape,
                  cfg=cfg._replace(num_experts=0, epochs=0, seed=0))
    lowered = experts._epoch_all.lower(
        states, i32(cfg.num_experts), i32(), i32(), i32(num_train), i32(),
        _sds((num_train,) + shape), i32(num_train), **static)
    return lowered, dict(what='jaxdd.pretrain.experts._epoch_all', stand_in={
        'inputs': 'jax.ShapeDtypeStruct', 'train_images': num_train,
        'experts': cfg.num_experts})
  return Case('experts', scale, f'{data.label}, {_experts_count(config)} experts, '
              f'{num_train} train images', config, lower, config_name)


def _experts_count(config: Callable) -> int:
  try:
    return int(config().objective.experts.num_experts)
  except Exception:
    return -1


@contextlib.contextmanager
def stand_in_experts(num: int, record: dict):
  """``expert_store.load_or_train`` returns a random buffer of ``num`` experts (or
  fewer, the config's) of the right [E, epochs + 1, P] instead of training one."""
  saved = expert_store.load_or_train

  def fake(*args, **kwargs):   # the real one's arguments, read by name
    bound = inspect.signature(saved).bind(*args, **kwargs).arguments
    model, image_shape, cfg = bound['model'], bound['image_shape'], bound['cfg']
    spec, unflatten = experts.model_layout(model, image_shape)
    p = sum(math.prod(s) for _, s, _ in spec)
    e = min(num, cfg.num_experts)
    traj = np.random.default_rng(0).normal(
        scale=1e-2, size=(e, cfg.epochs + 1, p)).astype(np.float32)
    record.update(buffer_experts=e, buffer_experts_config=cfg.num_experts,
                  buffer_shape=list(traj.shape),
                  buffer_bytes_config=4 * cfg.num_experts * (cfg.epochs + 1) * p)
    return experts.Buffer(traj, unflatten, spec, {})

  expert_store.load_or_train = fake
  try:
    yield
  finally:
    expert_store.load_or_train = saved


def distill_case(step: str, scale: str, data: Data, label: str, config: Callable,
                 config_name: str, train_per_class: int = 0, slow: bool = False,
                 **overrides) -> Case:
  """The jitted step of ``distill.setup(config)``, lowered with the run's own state,
  key, training split and class index. The data set is a random stand-in with
  max(batch_real, ceil(ipc), ``train_per_class``) images per class; ``zca`` is 'none'
  (a whitening changes pixel values, not the step); ``overrides`` are dotted config
  fields (e.g. ``{'objective.syn_steps': 80}``)."""
  def load():
    return set_fields(config(), overrides)

  def lower(c, mesh, opts, tmp):
    per_class = max(int(c.objective.batch_real), math.ceil(c.ipc), train_per_class)
    c.data = stand_in_npz(data, per_class, tmp)
    c.zca = 'none'
    stand = {'train_images_per_class': per_class, 'zca': 'none (stand-in data)',
             'data': f'random uint8 {data.label}-shaped'}
    kw = {'mesh': mesh} if 'mesh' in inspect.signature(distill.setup).parameters else {}
    with stand_in_experts(opts['buffer_experts'], stand):
      run = distill.setup(c, **kw)
    lowered = run.step_fn.lower(run.state, run.base_key, run.x_train, run.index)
    return lowered, dict(what='jaxdd.distill.setup(config).step_fn', stand_in=stand)

  return Case(step, scale, label, load, lower, config_name, slow)


def cfm_case(scale: str, data: Data, label: str, config: Callable, config_name: str,
             train_per_class: int = 20, slow: bool = False) -> Case:
  """CFM's recover batch (``sre.recover.make_batch_fn``: one jitted ``lax.scan`` of
  ``iterations`` Adam steps on one image per class) with a freshly initialised teacher
  of the config's first teacher set; its statistics over ``train_per_class`` random
  images per class."""
  def lower(c, mesh, opts, tmp):
    c.data = stand_in_npz(data, max(train_per_class, int(c.ipc)), tmp)
    ds = data_lib.load_from_config(c)
    tcfgs, rcfg, _ = pipeline.check_config(c, ds)
    shape, k = tuple(ds.x_train.shape[1:]), ds.num_classes
    model = teachers.make_teacher_model(tcfgs[0], k, shape)
    variables = models.init_model(model, jax.random.key(0), shape)
    targets = recover.prepare_targets(rcfg.method, (model, variables), ds.x_train,
                                      ds.y_train, k, rcfg)
    method = recover.METHODS[rcfg.method]
    state = {'teachers': (method.init_state(rcfg, targets),),
             'shared': {'ema_images': jnp.zeros((k,) + shape, jnp.float32)}}
    run = recover.make_batch_fn(rcfg, [model])
    lowered = run.lower(_sds((k,) + shape), jnp.arange(k, dtype=jnp.int32), [variables],
                        [targets], state, jax.random.key(0), jnp.int32(0),
                        jnp.float32(recover.batch_betas(rcfg)[0]))
    return lowered, dict(what='jaxdd.sre.recover.make_batch_fn(cfg, [teacher])',
                         stand_in={'teacher': 'freshly initialised',
                                   'train_images_per_class': max(train_per_class,
                                                                 int(c.ipc)),
                                   'iterations': rcfg.iterations})
  return Case('cfm', scale, label, config, lower, config_name, slow)


def _cases() -> list[Case]:
  f = _config_file
  small = [
      eval_case('small', MNIST, 10),
      experts_case('small', MNIST, f('mtt_mnist.py', '10'), 'configs/mtt_mnist.py:10',
                   6000),
      distill_case('dm', 'small', MNIST, 'MNIST IPC 10', f('dm_mnist.py', '10'),
                   'configs/dm_mnist.py:10'),
      distill_case('dc', 'small', MNIST, 'MNIST IPC 1', f('dc_mnist.py', 'ipc=1'),
                   'configs/dc_mnist.py:ipc=1'),
      distill_case('mtt', 'small', MNIST, 'MNIST IPC 10, syn_steps 10',
                   f('mtt_mnist.py', '10'), 'configs/mtt_mnist.py:10'),
      distill_case('ratbptt', 'small', MNIST, 'MNIST IPC 1', f('ratbptt_mnist.py', '1'),
                   'configs/ratbptt_mnist.py:1'),
      distill_case('kip', 'small', MNIST, 'MNIST IPC 10 (FC NTK)', f('kip_mnist.py', '10'),
                   'configs/kip_mnist.py:10'),
      distill_case('podd', 'small', MNIST, 'MNIST IPC 0.5 poster',
                   f('podd_mnist.py', '0.5'), 'configs/podd_mnist.py:0.5'),
      distill_case('frepo', 'small', MNIST, 'MNIST IPC 10', f('frepo_mnist.py', '10'),
                   'configs/frepo_mnist.py:10'),
      cfm_case('small', MNIST, 'MNIST IPC 10', f('cfm_mnist.py', 'ipc=10'),
               'configs/cfm_mnist.py:ipc=10'),
  ]
  paper = [
      eval_case('paper', CIFAR10, 10), eval_case('paper', CIFAR10, 50),
      eval_case('paper', CIFAR100, 10),
      experts_case('paper', CIFAR10, f('mtt_cifar10.py', '10'),
                   'configs/mtt_cifar10.py:10', 50000),
  ]
  for ipc in (10, 50):
    paper.append(distill_case('dm', 'paper', CIFAR10, f'CIFAR-10 IPC {ipc}',
                              f('dm_cifar10.py', str(ipc)), f'configs/dm_cifar10.py:{ipc}'))
  for ipc in (10, 50):
    paper.append(distill_case(
        'dm', 'paper', CIFAR100, f'CIFAR-100 IPC {ipc}',
        _recipe(matching.dm_config, 'tfds:cifar100', ipc, 20000),
        f"jaxdd.recipes.matching.dm_config('tfds:cifar100', {ipc})", slow=True))
  for ipc in (10, 50):
    paper.append(distill_case('dc', 'paper', CIFAR10, f'CIFAR-10 IPC {ipc}',
                              f('dc_cifar10.py', str(ipc)), f'configs/dc_cifar10.py:{ipc}'))
  for data, ipc in ((CIFAR10, 10), (CIFAR10, 50), (CIFAR100, 10), (CIFAR100, 50)):
    paper.append(distill_case(
        'mtt', 'paper', data, f'{data.label} IPC {ipc}, syn_steps 80',
        _recipe(trajectory.mtt_cifar10_config, ipc, 5000),
        f'configs/mtt_cifar10.py:{ipc} ({data.label} data, objective.syn_steps=80)',
        slow=data is CIFAR100, **{'objective.syn_steps': 80}))
  paper += [
      distill_case('ratbptt', 'paper', CIFAR10, 'CIFAR-10 IPC 1',
                   f('ratbptt_cifar10.py', '1'), 'configs/ratbptt_cifar10.py:1'),
      distill_case('ratbptt', 'paper', CIFAR10, 'CIFAR-10 IPC 10',
                   f('ratbptt_cifar10.py', '10'), 'configs/ratbptt_cifar10.py:10'),
      distill_case('kip', 'paper', CIFAR10, 'CIFAR-10 IPC 10 (conv NTK)',
                   f('kip_cifar10.py', '10'), 'configs/kip_cifar10.py:10', slow=True),
      distill_case('podd', 'paper', CIFAR10, 'CIFAR-10 IPC 1.0 poster',
                   f('podd_cifar10.py', '1.0'), 'configs/podd_cifar10.py:1.0'),
      distill_case('podd', 'paper', CUB, 'CUB-200 IPC 1.0 poster',
                   f('podd_cub.py', '1.0'), 'configs/podd_cub.py:1.0', slow=True),
      distill_case('frepo', 'paper', CIFAR10, 'CIFAR-10 IPC 10',
                   f('frepo_cifar10.py', '10'), 'configs/frepo_cifar10.py:10'),
      cfm_case('paper', CIFAR10, 'CIFAR-10 IPC 10', f('cfm_cifar10.py', '10'),
               'configs/cfm_cifar10.py:10'),
      cfm_case('paper', CIFAR100, 'CIFAR-100 IPC 10', f('cfm_cifar100.py', '10'),
               'configs/cfm_cifar100.py:10', slow=True),
  ]
  return small + paper


def select_cases(steps, scale: str, match: str | None = None) -> list[Case]:
  """The cases of ``steps`` at ``scale`` (and whose 'step shape' matches the regular
  expression ``match``), in the order a worker compiles them: the fast ones first,
  then the ``slow`` ones, each in the order of ``steps`` (so a timeout loses least)."""
  unknown = set(steps) - set(STEPS)
  if unknown:
    raise SystemExit(f'--steps: unknown {", ".join(sorted(unknown))}; '
                     f'accepted: {", ".join(STEPS)}')
  cases = [c for c in _cases() if c.scale == scale and c.step in steps
           and (not match or re.search(match, f'{c.step} {c.shape}'))]
  return sorted(cases, key=lambda c: (c.slow, list(steps).index(c.step)))


# ----------------------------------------------------------------------------------
# The worker: one process, one device count, every case.
# ----------------------------------------------------------------------------------


def _mesh_section(override, config):
  if override is not None:
    return {'members': override[0], 'data': override[1]}
  if config is not None and 'mesh' in config:
    return config.mesh
  return None


def run_case(case: Case, devices: int, opts: dict, tmp: str) -> dict:
  """Builds, lowers and compiles one case under the jaxdd mesh; its record (with
  ``error`` set, and the traceback's last line, when anything fails)."""
  fields: dict = {'options': {k: opts.get(k) for k in ('seed_loop', 'mesh_override',
                                                        'jaxdd_digest')}}
  t0 = time.perf_counter()
  try:
    config = case.config()
    mesh = sharding.make_mesh(_mesh_section(opts['mesh_override'], config))
    fields['mesh'] = {str(k): int(v) for k, v in mesh.shape.items()}
    with jax.set_mesh(mesh):
      t_build = time.perf_counter()
      lowered, extra = case.lower(config, mesh, opts, tmp)
      t_lowered = time.perf_counter()
      compiled = lowered.compile()
      t_compiled = time.perf_counter()
    fields.update(extra)
    fields.update(measure(compiled))
    fields.update(setup_seconds=round(t_build - t0, 3),
                  lower_seconds=round(t_lowered - t_build, 3),
                  compile_seconds=round(t_compiled - t_lowered, 3))
  except Exception as e:   # one failing step must not hide the others
    tb = traceback.format_exc().strip().splitlines()
    where = [l.strip() for l in tb if l.strip().startswith('File ')][-1:]
    fields['error'] = f'{type(e).__name__}: {str(e)[:500]}' + (
        f' [{where[0]}]' if where else '')
    fields['setup_seconds'] = round(time.perf_counter() - t0, 3)
  extra_stand = fields.pop('stand_in', {})
  rec = make_record(case.step, devices, case.scale, case.shape,
                    config=case.config_name, stand_in=extra_stand, **fields)
  return rec


def worker(args) -> int:
  devices = args.devices[0]
  if jax.device_count() != devices:
    print(f'worker: expected {devices} devices, jax sees {jax.device_count()} '
          '(XLA_FLAGS must be set before jax is imported)', file=sys.stderr)
    return 3
  opts = {'seed_loop': args.seed_loop, 'mesh_override': args.mesh,
          'buffer_experts': args.buffer_experts, 'jaxdd_digest': source_digest()}
  tmp = tempfile.mkdtemp(prefix='jaxdd_scaling_')
  try:
    for case in select_cases(args.steps, args.scale, args.match):
      rec = run_case(case, devices, opts, tmp)
      with open(args._records, 'a') as f:
        f.write(json.dumps(rec) + '\n')
      jax.clear_caches()
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return 0


# ----------------------------------------------------------------------------------
# The parent: one worker per device count, the results file, provenance.
# ----------------------------------------------------------------------------------


def source_digest() -> str:
  """SHA-256 (16 hex digits) of jaxdd/'s Python sources as they are on disk now: each
  worker records it, so a sweep that outlived an edit of jaxdd/ shows it."""
  import hashlib
  h = hashlib.sha256()
  root = os.path.join(REPO, 'jaxdd')
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
      if name.endswith('.py'):
        path = os.path.join(dirpath, name)
        h.update(os.path.relpath(path, root).encode())
        with open(path, 'rb') as f:
          h.update(f.read())
  return h.hexdigest()[:16]


def _git() -> dict:
  def git(*a):
    return subprocess.run(['git', *a], cwd=REPO, capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()
  try:
    return {'commit': git('rev-parse', 'HEAD'), 'dirty': bool(git('status', '--porcelain'))}
  except (OSError, subprocess.SubprocessError):
    return {'commit': 'unknown', 'dirty': None}


def _version(name: str) -> str:
  try:
    return importlib.metadata.version(name)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def _memory_bytes() -> int | None:
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError, AttributeError):
    return None


def provenance(argv) -> dict:
  return {
      'command': list(argv),
      'git': _git(),
      'versions': {'python': platform.python_version(),
                   **{n: _version(n) for n in ('jax', 'jaxlib', 'flax', 'optax', 'numpy')}},
      'host': {'cpu_model': machine._cpu_model(), 'cores': os.cpu_count(),
               'memory_bytes': _memory_bytes(), 'machine': platform.machine(),
               'description': machine.hardware()},
  }


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def worker_env(devices: int) -> dict:
  """The environment of a worker: ``devices`` simulated CPU devices (other XLA flags
  kept), the CPU platform, no persistent compilation cache."""
  env = dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  env['XLA_FLAGS'] = ' '.join(flags + [f'--xla_force_host_platform_device_count={devices}'])
  env['JAX_PLATFORMS'] = 'cpu'
  env['JAX_ENABLE_COMPILATION_CACHE'] = 'false'
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
  return env


def run_worker(devices: int, args, log=print) -> tuple[list, dict]:
  """Runs one worker with a wall-clock ``args.timeout``; (records, worker info).
  Records written before a timeout or crash are kept."""
  fd, records_path = tempfile.mkstemp(prefix=f'scaling_{devices}_', suffix='.jsonl')
  os.close(fd)
  cmd = [sys.executable, '-m', 'benchmarks.scaling', '--_worker', f'--devices={devices}',
         f'--steps={",".join(args.steps)}', f'--scale={args.scale}',
         f'--seed_loop={args.seed_loop}', f'--buffer_experts={args.buffer_experts}',
         f'--_records={records_path}']
  if args.mesh is not None:
    cmd.append(f'--mesh={args.mesh[0]},{args.mesh[1]}')
  if args.match:
    cmd.append(f'--match={args.match}')
  log_path = records_path[:-len('.jsonl')] + '.log'
  t0 = time.time()
  seen, status = 0, None
  with open(log_path, 'w') as log_file:
    proc = subprocess.Popen(cmd, cwd=REPO, env=worker_env(devices), stdout=log_file,
                            stderr=subprocess.STDOUT, start_new_session=True)
    while True:
      try:
        status = proc.wait(timeout=2)
      except subprocess.TimeoutExpired:
        status = None
      lines = _read_lines(records_path)
      for rec in lines[seen:]:
        log(_progress_line(rec))
      seen = len(lines)
      if status is not None:
        break
      if time.time() - t0 > args.timeout:
        os.killpg(proc.pid, signal.SIGKILL)   # the worker's own process group
        proc.wait()
        status = 'timeout'
        break
  records = _read_lines(records_path)
  with open(log_path) as f:
    tail = f.read()[-3000:]
  os.remove(records_path)
  os.remove(log_path)
  info = {'devices': devices, 'seconds': round(time.time() - t0, 1),
          'status': status if status == 'timeout' else f'exit {status}'}
  if status != 0:
    info['log_tail'] = tail
  expected = select_cases(args.steps, args.scale, args.match)
  done = {(r['step'], r['shape']) for r in records}
  for case in expected:
    if (case.step, case.shape) not in done:
      reason = (f'timeout: worker killed after {args.timeout} s' if status == 'timeout'
                else f'worker ended ({info["status"]}) before this case')
      rec = make_record(case.step, devices, case.scale, case.shape, error=reason,
                        config=case.config_name,
                        options={'seed_loop': args.seed_loop, 'mesh_override': args.mesh,
                                 'jaxdd_digest': None})
      records.append(rec)
      log(_progress_line(rec))
  return records, info


def _read_lines(path: str) -> list:
  try:
    with open(path) as f:
      return [json.loads(l) for l in f if l.strip().endswith('}')]
  except FileNotFoundError:
    return []


def _progress_line(rec: dict) -> str:
  head = f'[{rec["devices"]:>2} dev] {rec["step"]:<8} {rec["shape"]:<40}'
  if rec['error']:
    return f'{head} ERROR {rec["error"][:300]}'
  return (f'{head} mesh {rec["mesh"]}  {fmt_flops(rec["flops_per_device"])} GFLOP/dev  '
          f'coll {fmt_mb(rec["collective_bytes"])} MB  mem {fmt_mb(rec["memory_per_device"])}'
          f' MB  compile {rec["compile_seconds"]:.1f} s')


def write_results(path: str, records: list, prov: dict) -> None:
  for r in records:
    check_record(r)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump({'records': records, 'provenance': prov}, f, indent=1)
  os.replace(tmp, path)


# ----------------------------------------------------------------------------------
# The markdown tables (README's numbers come from here, never typed by hand).
# ----------------------------------------------------------------------------------


def fmt_flops(v) -> str:
  return '—' if v is None else f'{v / 1e9:.3g}'


def fmt_mb(v) -> str:
  return '—' if v is None else f'{v / 2 ** 20:.4g}'


def markdown_tables(results: dict) -> str:
  """Four tables (GFLOP, collective MB, memory MB and compile s per device), one row
  per (step, shape), one column per device count; flops also as the speed-up
  flops(1 device) / flops(N) where 1 device was measured."""
  records = results['records']
  devices = sorted({r['devices'] for r in records})
  rows: dict = {}
  for r in records:
    rows.setdefault((r['step'], r['shape']), {})[r['devices']] = r

  def table(title, cell):
    head = '| step | shape | ' + ' | '.join(f'{d} dev' for d in devices) + ' |'
    sep = '|---|---|' + '---:|' * len(devices)
    lines = [f'**{title}**', '', head, sep]
    for (step, shape), by_dev in rows.items():
      cells = []
      for d in devices:
        r = by_dev.get(d)
        cells.append('' if r is None else ('error' if r['error'] else cell(r, by_dev)))
      lines.append(f'| {step} | {shape} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)

  def flops(r, by_dev):
    one = by_dev.get(1)
    s = fmt_flops(r['flops_per_device'])
    if (one is not None and not one['error'] and r['devices'] > 1
        and r['flops_per_device']):
      s += f' ({one["flops_per_device"] / r["flops_per_device"]:.2g}×)'
    return s

  mesh_note = sorted({(d, tuple(r['mesh'].values())) for r in records
                      if r['mesh'] for d in [r['devices']]})
  parts = [
      table('GFLOP per device (speed-up over 1 device)', flops),
      table('Collective output MB per device', lambda r, _: fmt_mb(r['collective_bytes'])),
      table('Memory MB per device (argument + output + temp − alias)',
            lambda r, _: fmt_mb(r['memory_per_device'])),
      table('Compile seconds', lambda r, _: f'{r["compile_seconds"]:.1f}'),
  ]
  meshes = ', '.join(f'{d}: {m[0]}×{m[1]}' for d, m in sorted(set(mesh_note)))
  prov = results.get('provenance', {})
  git = prov.get('git', {})
  foot = (f'Mesh (members × data) by device count: {meshes}. Generated by '
          f'`python -m benchmarks.scaling --table` from a run at commit '
          f'{str(git.get("commit", "unknown"))[:10]}{" (dirty)" if git.get("dirty") else ""},'
          f' jax {prov.get("versions", {}).get("jax", "?")}, '
          f'{prov.get("host", {}).get("description", "?")}.')
  digests: dict = {}
  for r in records:
    d = (r.get('options') or {}).get('jaxdd_digest')
    if d:
      digests.setdefault(d, set()).add(r['devices'])
  if len(digests) == 1:
    foot += f' jaxdd sources {next(iter(digests))} (one version for every worker).'
  elif len(digests) > 1:
    foot += (' **The workers compiled different jaxdd sources** (edited during the '
             'sweep): ' + '; '.join(f'{d}: {", ".join(map(str, sorted(n)))} dev'
                                    for d, n in digests.items()) + '.')
  errors = [f'* {r["step"]} {r["shape"]}, {r["devices"]} dev: {r["error"][:200]}'
            for r in records if r['error']]
  out = '\n\n'.join(parts) + '\n\n' + foot
  if errors:
    out += '\n\nErrors:\n\n' + '\n'.join(errors)
  return out


# ----------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------

def _int_list(s: str) -> list[int]:
  try:
    out = [int(x) for x in s.split(',') if x.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected integers separated by commas, got {s!r}')
  if not out or min(out) < 1:
    raise argparse.ArgumentTypeError(f'device counts must be >= 1, got {s!r}')
  return out


def _mesh_arg(s: str) -> tuple[int, int]:
  try:
    m, d = (int(x) for x in s.split(','))
  except ValueError:
    raise argparse.ArgumentTypeError(f'--mesh is MEMBERS,DATA (-1 = the rest), got {s!r}')
  return m, d


def _steps_arg(s: str) -> list[str]:
  return list(STEPS) if s == 'all' else [x.strip() for x in s.split(',') if x.strip()]


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--devices', type=_int_list, default=[1, 8],
                 help='simulated device counts, e.g. 1,2,4,8,16,32,64')
  p.add_argument('--steps', type=_steps_arg, default=list(STEPS),
                 help=f'comma-separated, or all: {",".join(STEPS)}')
  p.add_argument('--scale', choices=SCALES, default='small')
  p.add_argument('--out', default=None,
                 help='results JSON (default benchmarks/results/scaling_<scale>.json)')
  p.add_argument('--timeout', type=float, default=3600.0,
                 help='wall-clock seconds per worker (one device count)')
  p.add_argument('--mesh', type=_mesh_arg, default=None,
                 help='MEMBERS,DATA for every step (default: the config\'s mesh '
                      'section, else jaxdd.sharding.MeshConfig\'s defaults)')
  p.add_argument('--seed_loop', choices=SEED_LOOPS, default='vmap',
                 help='how eval seeds and experts share a device (default vmap, the '
                      'accelerators\' choice: XLA counts a lax.map body once)')
  p.add_argument('--buffer_experts', type=int, default=2,
                 help='experts in the stand-in MTT buffer (the config\'s count is '
                      'recorded; the buffer is a constant of the step)')
  p.add_argument('--match', default=None, metavar='REGEX',
                 help="only the cases whose 'step shape' matches, e.g. 'CIFAR-10 '")
  p.add_argument('--table', metavar='FILE', default=None,
                 help='print the markdown tables of a results file and exit')
  p.add_argument('--_worker', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--_records', default=None, help=argparse.SUPPRESS)
  return p.parse_args(argv)


def main(argv=None) -> int:
  command = getattr(sys, 'orig_argv', sys.argv) if argv is None else ['scaling'] + argv
  argv = sys.argv[1:] if argv is None else argv
  args = parse_args(argv)
  if args.table:
    with open(args.table) as f:
      print(markdown_tables(json.load(f)))
    return 0
  if args._worker:
    return worker(args)
  if not select_cases(args.steps, args.scale, args.match):   # unknown steps fail here
    raise SystemExit('no case matches --steps, --scale and --match')
  out = args.out or os.path.join(common.RESULTS, f'scaling_{args.scale}.json')
  prov = provenance(command)
  prov['started'] = _now()
  prov['settings'] = {'timeout': args.timeout, 'seed_loop': args.seed_loop,
                      'mesh': args.mesh, 'buffer_experts': args.buffer_experts,
                      'match': args.match}
  prov['jaxdd_digest'] = source_digest()
  prov['workers'] = []
  records: list = []
  t0 = time.time()
  for n in args.devices:
    recs, info = run_worker(n, args)
    info['jaxdd_digests'] = sorted({r['options'].get('jaxdd_digest') for r in recs
                                    if r['options'].get('jaxdd_digest')})
    records += recs
    prov['workers'].append(info)
    prov['finished'] = _now()
    prov['seconds'] = round(time.time() - t0, 1)
    write_results(out, records, prov)
    print(f'[{n:>2} dev] worker {info["status"]} in {info["seconds"]} s; wrote {out}',
          flush=True)
  print(f'{len(records)} records in {time.time() - t0:.0f} s -> {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
