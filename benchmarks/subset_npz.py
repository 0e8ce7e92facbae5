r"""Writes a class-balanced subset of an npz data set's training split (test split kept).

CPU-sized runs that must train many networks on the training set (MTT's expert
buffer: 10 experts x 5 epochs take 96 min on full MNIST on 2 cores) use a subset:

    python benchmarks/subset_npz.py ../shared/data/mnist.npz 1200 /tmp/mnist12k/mnist.npz
    python -m jaxdd.launch --config=configs/mtt_mnist.py:10 \
        --config.data=npz:/tmp/mnist12k/mnist.npz

Keep the file stem (``mnist``): jaxdd picks the published normalisation by it. The
subset is the first ``per_class`` images of every class in a seeded permutation, so
the same command writes the same file.
"""

import argparse
import os

import numpy as np


def class_balanced_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """Sorted indices of ``per_class`` images of every class, chosen by a seeded permutation."""
  order = np.random.default_rng(seed).permutation(len(y))
  picked = []
  for c in np.unique(y):
    of_class = order[y[order] == c]
    if len(of_class) < per_class:
      raise SystemExit(f'class {c} has {len(of_class)} training images, fewer than '
                       f'per_class={per_class}')
    picked.append(of_class[:per_class])
  return np.sort(np.concatenate(picked))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('source', help='npz with x_train, y_train, x_test, y_test')
  p.add_argument('per_class', type=int, help='training images kept per class')
  p.add_argument('dest', help='output npz (keep the source file stem)')
  p.add_argument('--seed', type=int, default=0)
  a = p.parse_args()
  with np.load(a.source) as d:
    arrays = dict(d)
  idx = class_balanced_subset(arrays['y_train'], a.per_class, a.seed)
  arrays['x_train'], arrays['y_train'] = arrays['x_train'][idx], arrays['y_train'][idx]
  os.makedirs(os.path.dirname(os.path.abspath(a.dest)), exist_ok=True)
  np.savez(a.dest, **arrays)
  print(f'{a.dest}: {len(idx)} training images ({a.per_class} per class), '
        f'{len(arrays["y_test"])} test images')


if __name__ == '__main__':
  main()
