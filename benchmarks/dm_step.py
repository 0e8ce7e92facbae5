"""Benchmark: one DM iteration on CIFAR-10 IPC 10 (issue 3).

256 real images per class, Siamese DSA, a fresh ConvNet-3 (width 128, instance norm)
per iteration, the full jitted step of ``jaxdd.distill`` (sampling on device, decode,
loss, gradient, SGD update). Target: <= 1.8 s per iteration on 2 CPU cores after
compilation (the authors' PyTorch code: 3.3 s); compile time reported separately.

The step time does not depend on pixel values, so by default the benchmark uses a
random data set of CIFAR-10's shape (300 images per class); pass
``--data=npz:~/.cache/jaxdd/cifar10.npz`` to time it on the decoded real files.

    python benchmarks/dm_step.py [--conv_impl=xla|matmul|auto] [--steps=5]

Writes benchmarks/results/dm_step_<conv_impl>.json.
"""

import argparse
import os
import time

import jax
import numpy as np

import common
import machine
from jaxdd import distill
from jaxdd.config_utils import load_config_file

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--data', default=None)
  p.add_argument('--conv_impl', default=None)
  p.add_argument('--steps', type=int, default=5)
  a = p.parse_args()

  config = load_config_file(os.path.join(HERE, '..', 'configs', 'dm_cifar10.py'), '10')
  if a.conv_impl:
    config.model.conv_impl = a.conv_impl
  config.data = a.data or common.random_npz('cifar10', (32, 32, 3))
  run = distill.setup(config)
  state = run.state
  t0 = time.time()
  state, m = run.step_fn(state, run.base_key, run.x_train, run.index)
  jax.block_until_ready(m)
  first = time.time() - t0
  times = []
  for _ in range(a.steps):
    t0 = time.time()
    state, m = run.step_fn(state, run.base_key, run.x_train, run.index)
    jax.block_until_ready(m)
    times.append(time.time() - t0)
  result = {
      'benchmark': 'one DM iteration, CIFAR-10 shape, IPC 10, 256 real per class, '
                   'Siamese DSA, ConvNet-3 w128 instancenorm',
      'data': 'random CIFAR-10-shaped' if a.data is None else a.data,
      'conv_impl': config.model.get('conv_impl', 'auto'),
      'first_step_seconds_including_compile': round(first, 2),
      'step_seconds_median': round(float(np.median(times)), 3),
      'step_seconds_all': [round(t, 3) for t in times],
      'target_seconds': 1.8, 'pytorch_reference_seconds': 3.3,
      'hardware': machine.hardware(),
      'jax': jax.__version__,
  }
  common.write_result(f'dm_step_{result["conv_impl"]}.json', result)


if __name__ == '__main__':
  main()
