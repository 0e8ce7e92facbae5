"""Sequential-batch synthesis against a pretrained teacher: SRe2L, UniDD/CFM and EDC.

The "recover" stage of the squeeze-recover-relabel family (docs/methods.md §1 "SRe2L", §2
"UniDD", "EDC"; papers 001 UniDD and 002 EDC) is not the generic distillation loop of
``jaxdd/distill.py``: the synthetic set is built in IPC sequential batches, each holding
one image per class, and each batch is optimised on its own for ``iterations`` steps
with a fresh Adam and a cosine learning rate:

    for k in range(ipc):                                   # Python, one line of log each
      x = init(k)                                          # noise or the k-th real image
      for t in range(iterations):                          # ONE jitted lax.scan
        x_aug = augment(key_t, x)                          # RRC, flip, roll (shared)
        loss = method.loss(x_aug -> teacher -> statistics) # SRe2L / CFM / EDC
        x = clip(x + adam(grad))

A method is a ``RecoverMethod`` (prepare the teacher statistics once, the initial
cross-batch state, the loss, the end-of-batch update) and an entry of ``METHODS``; the
loop has no method branches. The loss pieces are ``jaxdd.sre.losses.statistics`` and
``jaxdd.sre.losses.spectral``. β_k of CFM's curriculum and the batch index are traced
arguments of the jitted batch function, so it compiles once for all batches.

Several teachers (EDC's round robin) are used in turn, teacher ``i = (k·iterations + t)
mod n`` (EDC's ``counter`` is never reset across batches), through ``lax.switch`` inside
the same scan: teachers may differ in architecture, every branch returns the whole
state with only its own teacher's part changed.

The package: ``config`` (``RecoverConfig``, ``default_config``, checks, clip bounds,
β_k), ``methods`` (``RecoverMethod`` entries of ``METHODS`` and the batch-shared
augmentation, built on ``jaxdd.augment.batch``), ``loop`` (``prepare_targets``,
``make_batch_fn``, ``synthesize``). Everything public is re-exported here.

Where this differs from the authors' code: CFM's Σ_t is the full-train-set population
covariance (``hook.py`` averages per-batch-of-128 covariances); EDC's conv statistics
are taken on un-augmented training images, its per-class patch mean/var key swap and
its conv-hook ``drop_rate`` (0 in the CIFAR script) are not reproduced, and with
``edc_form='paper'`` (no code exists) the per-class synthetic statistics are smoothed
like the global ones; real initial images are whatever ``real_init`` holds (CFM takes
the k-th image of each class in data-set order, EDC a random one per class:
``select_real_init`` is EDC's choice).
"""

from jaxdd.sre.recover.config import (CURRICULA, INITS, METHOD_NAMES, RecoverConfig,
                                  batch_betas, check_recover_config, clip_bounds,
                                  default_config)
from jaxdd.sre.recover.loop import make_batch_fn
from jaxdd.sre.recover.loop import prepare_targets
from jaxdd.sre.recover.loop import synthesize
from jaxdd.sre.recover.methods import (METHODS, RecoverMethod, StepInfo, apply_augment,
                                   augment, augment_params, patch_view)

__all__ = ['RecoverConfig', 'RecoverMethod', 'StepInfo', 'METHODS', 'METHOD_NAMES',
           'INITS', 'CURRICULA', 'default_config', 'check_recover_config', 'clip_bounds',
           'batch_betas', 'augment_params', 'apply_augment', 'augment', 'patch_view',
           'prepare_targets', 'make_batch_fn', 'synthesize']
