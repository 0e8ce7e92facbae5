"""Benchmark: memory and time of the MTT meta-gradient vs unroll length and remat policy.

MNIST shapes (28x28x1, 10 classes), ConvNet-3 (width 128, instance norm), IPC 10,
batch_syn 100 (the whole set), per-sample DSA in every student step: the jitted
``value_and_grad`` of ``trajectory.trajectory_loss`` w.r.t. the images and syn_lr, for
each ``syn_steps`` x ``checkpoint`` policy ('none', 'step', 'nested'; see
``trajectory.unroll``) x ``grad_chunks`` (each student step's gradient in that many
rematerialised sub-batches; 'none' only with 1). The buffer is random (2 experts x 5
checkpoints of the right P): memory and time do not depend on its values.

Per configuration: XLA's compile-time memory estimate (``compiled.memory_analysis()``:
peak ≈ temp + arguments + outputs − aliased), the compile time and the median of
``--repeats`` timed calls after a warm-up. A configuration whose estimate exceeds
``--max_run_gb`` is compiled but not run. Separately, in a fresh subprocess, the
growth of the process's peak RSS (``ru_maxrss``) over its RSS before compiling, for
syn_steps 10 with 'step', one probe per ``--grad_chunks`` value; as in the distillation
loop, the heap the compiler freed goes back to the OS before the first call
(``host_memory.release_free_memory``; ``--no_trim`` keeps it).

Acceptance (issue 5): syn_steps 10 'step' ≤ 3 s per iteration and ≤ 1 GB above the
start; syn_steps 80 within 8 GB (the 'step' / 'nested' estimate). For scale (XLA
cost analysis): one forward of the 100 images is 9.8 GFLOP, the meta-gradient of one
student step 69 GFLOP, ≈ 98 with 'step' rematerialisation, so syn_steps 10 is ≈ 1 TFLOP
in the patches form; 55.5 GFLOP per step, 0.56 TFLOP, with Winograd convolutions (the
CPU default).

    python benchmarks/mtt_memory.py                          # the full table
    python benchmarks/mtt_memory.py --syn_steps=10 --policies=step --grad_chunks=1  # quick
    python benchmarks/mtt_memory.py --time_max_steps=10   # time 10 steps, memory of all

Writes benchmarks/results/mtt_memory.json and prints a markdown table.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxdd.pretrain import experts
from jaxdd import host_memory
from jaxdd import models
from jaxdd.interfaces import SynData
from jaxdd.objectives import trajectory_loss as tm
from jaxdd.objectives import trajectory_matching as mtt

import machine

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE, K, IPC = (28, 28, 1), 10, 10
GB = 1024 ** 3


def _rss_bytes() -> int:
  try:
    import psutil
    return psutil.Process().memory_info().rss
  except ImportError:   # Linux /proc fallback
    with open('/proc/self/statm') as f:
      return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _available_bytes() -> int:
  try:
    import psutil
    return psutil.virtual_memory().available
  except ImportError:
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def make_problem(conv_impl: str, seed: int = 0):
  """(ctx, images, labels): a ConvNet-3 student, a random buffer, a random IPC-10 set."""
  model = models.get_model('convnet', K, image_shape=SHAPE, width=128, depth=3,
                           norm='instancenorm', conv_impl=conv_impl)
  params = models.init_model(model, jax.random.key(seed), SHAPE)['params']
  flat, unflatten = models.flatten_params(params)
  rng = np.random.default_rng(seed)
  steps = rng.normal(scale=1e-3, size=(2, 4, flat.shape[0])).astype(np.float32)
  traj = np.asarray(flat)[None, None] + np.concatenate(
      [np.zeros((2, 1, flat.shape[0]), np.float32), np.cumsum(steps, 1)], 1)
  buffer = experts.Buffer(traj, unflatten, models.param_spec(params), {})
  ctx = mtt.trajectory_ctx(model, buffer, SHAPE)
  images = jnp.asarray(rng.normal(size=(K * IPC,) + SHAPE), jnp.float32)
  labels = jax.nn.one_hot(np.repeat(np.arange(K), IPC), K)
  return ctx, images, labels, int(flat.shape[0])


def compile_loss(ctx, labels, syn_steps: int, policy: str, grad_chunks: int = 1):
  opts = tm.MTTConfig(syn_steps=syn_steps, expert_epochs=2, max_start_epoch=2,
                      batch_syn=K * IPC, dsa=True, checkpoint=policy,
                      grad_chunks=grad_chunks)

  def loss(images, syn_lr, key):
    syn = SynData(images, labels, {'syn_lr': syn_lr})
    return tm.trajectory_loss(syn, key, ctx['trajectories'], ctx['apply_train'],
                              jnp.int32(0), opts)[0]

  f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  t0 = time.time()
  compiled = f.lower(jnp.zeros((K * IPC,) + SHAPE), jnp.float32(0.01),
                     jax.random.key(0)).compile()
  return compiled, time.time() - t0


def memory_estimate(compiled) -> dict:
  """XLA's memory_analysis fields (bytes) and peak = temp + args + outputs − alias."""
  ma = compiled.memory_analysis()
  fields = ('temp_size_in_bytes', 'argument_size_in_bytes', 'output_size_in_bytes',
            'alias_size_in_bytes', 'generated_code_size_in_bytes')
  out = {f: int(getattr(ma, f, 0) or 0) for f in fields}
  out['peak_bytes'] = (out['temp_size_in_bytes'] + out['argument_size_in_bytes']
                       + out['output_size_in_bytes'] - out['alias_size_in_bytes'])
  return out


def time_calls(compiled, images, repeats: int) -> list:
  times = []
  for r in range(repeats + 1):   # the first call is a warm-up
    t0 = time.time()
    jax.block_until_ready(compiled(images, jnp.float32(0.01), jax.random.key(r)))
    times.append(time.time() - t0)
  return times[1:]


def rss_probe(conv_impl: str, syn_steps: int, policy: str, repeats: int,
              grad_chunks: int, trim: bool = True) -> dict:
  """Peak-RSS growth over the RSS before compiling (run in a fresh process).

  With ``trim``, the heap pages the compiler freed go back to the OS after compiling
  (`host_memory.release_free_memory`, as the distillation loop does).
  """
  ctx, images, labels, _ = make_problem(conv_impl)
  jax.block_until_ready(images)
  before = _rss_bytes()
  compiled, _ = compile_loss(ctx, labels, syn_steps, policy, grad_chunks)
  compiled_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KB
  resident_after_compile = _rss_bytes()
  if trim:
    host_memory.release_free_memory()
  resident_after_trim = _rss_bytes()
  times = time_calls(compiled, images, repeats)
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return {'syn_steps': syn_steps, 'checkpoint': policy, 'grad_chunks': grad_chunks,
          'trim': trim,
          'rss_before_gb': before / GB, 'peak_rss_after_compile_gb': compiled_peak / GB,
          'rss_after_compile_gb': resident_after_compile / GB,
          'rss_after_trim_gb': resident_after_trim / GB,
          'peak_rss_gb': peak / GB, 'rss_increase_gb': (peak - before) / GB,
          'step_seconds_median': float(np.median(times))}


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--syn_steps', default='10,20,40,80')
  p.add_argument('--policies', default='none,step,nested')
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--conv_impl', default='auto')
  p.add_argument('--grad_chunks', default='1,2,4',
                 help='objective.grad_chunks values: the table for each, and one RSS '
                      'probe each (syn_steps 10, step)')
  p.add_argument('--time_max_steps', type=int, default=None,
                 help='time only configurations with syn_steps up to this; the others '
                      'get the memory estimate alone (default: time all)')
  p.add_argument('--max_run_gb', type=float, default=None,
                 help='do not run configurations estimated above this (default: half '
                      'the available memory)')
  p.add_argument('--out', default=os.path.join(HERE, 'results', 'mtt_memory.json'))
  p.add_argument('--no_trim', action='store_true',
                 help='RSS probes without returning the compiler\'s freed heap to the OS '
                      '(the distillation loop returns it)')
  p.add_argument('--rss_probe', action='store_true', help=argparse.SUPPRESS)
  a = p.parse_args()
  if a.rss_probe:
    print(json.dumps(rss_probe(a.conv_impl, int(a.syn_steps), a.policies, a.repeats,
                               int(a.grad_chunks), trim=not a.no_trim)))
    return
  chunks_list = [int(c) for c in a.grad_chunks.split(',')]

  steps_list = [int(s) for s in a.syn_steps.split(',')]
  policies = a.policies.split(',')
  for pol in policies:
    if pol not in tm.CHECKPOINTS:
      sys.exit(f'--policies: {pol!r} is not one of {", ".join(tm.CHECKPOINTS)}')
  max_run = (a.max_run_gb * GB if a.max_run_gb else _available_bytes() / 2)

  # The RSS probes first, each in its own process, so nothing else inflates its
  # high-water mark.
  probes = []
  for c in chunks_list:
    probe = subprocess.run(
        [sys.executable, os.path.abspath(__file__), '--rss_probe', '--syn_steps=10',
         '--policies=step', f'--conv_impl={a.conv_impl}', f'--repeats={a.repeats}',
         f'--grad_chunks={c}'], capture_output=True, text=True, check=True)
    probes.append(json.loads(probe.stdout.strip().splitlines()[-1]))
    print('RSS probe:', json.dumps(probes[-1]), flush=True)

  ctx, images, labels, num_params = make_problem(a.conv_impl)
  rows = []
  # One row per (syn_steps, policy, grad_chunks); grad_chunks > 1 only with remat.
  configs = [(s, pol, c) for s in steps_list for pol in policies for c in chunks_list
             if pol != 'none' or c == 1]
  for s, pol, c in configs:
    compiled, compile_s = compile_loss(ctx, labels, s, pol, c)
    mem = memory_estimate(compiled)
    row = {'syn_steps': s, 'checkpoint': pol, 'grad_chunks': c,
           'compile_seconds': round(compile_s, 2),
           'estimated_peak_gb': round(mem['peak_bytes'] / GB, 3),
           'memory_analysis': mem}
    if a.time_max_steps is not None and s > a.time_max_steps:
      row['not_run'] = f'memory estimate only (--time_max_steps={a.time_max_steps})'
    elif mem['peak_bytes'] <= max_run:
      times = time_calls(compiled, images, a.repeats)
      row['step_seconds_median'] = round(float(np.median(times)), 3)
      row['step_seconds_all'] = [round(t, 3) for t in times]
    else:
      row['not_run'] = f'estimate above {max_run / GB:.1f} GB'
    rows.append(row)
    print(json.dumps({k: v for k, v in row.items() if k != 'memory_analysis'}),
          flush=True)
    del compiled

  at80 = [r['estimated_peak_gb'] for r in rows
          if r['syn_steps'] == 80 and r['checkpoint'] in ('step', 'nested')]
  # Issue 5's targets at syn_steps 10 ('step'), per grad_chunks (each its own probe).
  meets = {f"grad_chunks={r['grad_chunks']}": {
      'step_seconds<=3': r['step_seconds_median'] <= 3.0,
      'rss_increase_gb<=1': r['rss_increase_gb'] <= 1.0} for r in probes}
  result = {
      'benchmark': 'value_and_grad of the MTT loss, MNIST shapes, ConvNet-3 w128 '
                   'instancenorm, IPC 10, batch_syn 100, per-sample DSA',
      'num_params': num_params, 'conv_impl': a.conv_impl, 'rows': rows,
      'rss_probes': [{k: (round(v, 3) if isinstance(v, float) else v)
                      for k, v in r.items()} for r in probes],
      'acceptance': {
          'syn_steps_10_step': meets,
          'syn_steps_80_estimate_gb<=8': (min(at80) <= 8.0) if at80 else None},
      'matmul_peak_gflops': round(machine.matmul_gflops(), 1),
      'hardware': machine.hardware(),
      'jax': jax.__version__,
  }
  os.makedirs(os.path.dirname(a.out), exist_ok=True)
  with open(a.out, 'w') as f:
    json.dump(result, f, indent=2)

  print('\n| syn_steps | checkpoint | grad_chunks | est. peak (GB) | compile (s) | '
        'step (s) |')
  print('|---|---|---|---|---|---|')
  for r in rows:
    step_s = r.get('step_seconds_median', 'not run')
    print(f"| {r['syn_steps']} | {r['checkpoint']} | {r['grad_chunks']} | "
          f"{r['estimated_peak_gb']:.2f} | {r['compile_seconds']:.1f} | {step_s} |")
  for r in probes:
    print(f"RSS probe (syn_steps 10, step, grad_chunks {r['grad_chunks']}): "
          f"+{r['rss_increase_gb']:.2f} GB over {r['rss_before_gb']:.2f} GB "
          f"(+{r['peak_rss_after_compile_gb'] - r['rss_before_gb']:.2f} GB after "
          f"compiling), {r['step_seconds_median']:.2f} s per step")
  print('acceptance:', json.dumps(result['acceptance']))


if __name__ == '__main__':
  main()
