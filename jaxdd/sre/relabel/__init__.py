"""The relabel evaluation protocol: a student learns from a teacher's soft labels, online.

SRe2L, UniDD/CFM and EDC (docs/methods.md §1 "SRe2L Relabel", §2 "UniDD Eval", "EDC Eval")
do not train the evaluation network on the stored labels. Every training batch is
augmented (crop, flip, then CutMix or Mixup over the batch), a frozen teacher scores the
*augmented* batch in eval mode, and the student regresses on that output:

  * 'kl' (SRe2L, UniDD): KL(softmax(t/T) ‖ softmax(s/T)) summed over classes, divided
    by the batch size (PyTorch's ``KLDivLoss(reduction='batchmean')``), without the
    usual T² factor. T = 30 (SRe2L CIFAR), 20 (UniDD).
  * 'edc' (EDC's ``--loss-type mse_gt``): mean over all N·K entries of (s − t)², with t
    the mean logits of the teacher ensemble, plus 0.025 · CE(s, hard labels). The hard
    labels are the stored ones, not mixed by CutMix, as in EDC's code.

The structure mirrors ``jaxdd.evaluate``: one training run is one ``lax.scan`` of
``jaxdd.train``'s step, seeds run together through ``train.members.over_members``, the
test accuracy comes from ``evaluate.make_accuracy_fn``. Learning-rate schedules change
once per epoch, as the authors' ``LambdaLR`` / ``CosineAnnealingLR`` / ``MultiStepLR``
stepped after each epoch:

  * 'cosine' (SRe2L): 0.5 (1 + cos(π e / E)).
  * 'quarter_cosine' (UniDD): 0.5 (1 + cos(π e / 2E)); reaches 0.5 at e = E.
  * 'smoothed' (EDC paper, "smoothing LR schedule"): 0.5 (1 + cos(π e / ζE)) with the
    slowdown coefficient ζ (``slowdown``; the paper's ablation uses 1–3 and picks 2, the
    CIFAR-10 script passes ``--st 2``). With ζ = 2 it *is* the quarter cosine.
  * 'multistep' (EDC's CIFAR-10 ``train.sh``, ``--ls-type multisteplr``): × ``gamma``
    (0.5) at each epoch of ``milestones`` (800, 900, 950).

Weight EMA (EDC): from the first step on, ema ← d·ema + (1 − d)·params after every
optimizer step, starting from the initial weights (EDC deep-copies the model at
initialisation). Only 'params' are averaged; batch-norm statistics are the live model's
(EDC's ``EMAMODEL`` iterates over ``parameters()`` only). Evaluations at epochs
≥ ``ema_start_epoch`` use the EMA weights (EDC swaps them in for testing after epoch 800).

Read-out: 'final' is the accuracy after the last epoch. 'best_last_20' is UniDD's (and,
with EMA, EDC's) number: the best test accuracy over evaluations after every
``eval_every``-th epoch of the last ``best_window_frac`` of training; it selects on the
test set and so reads higher than 'final'.

Differences from the authors' code, on purpose:
  * As in ``jaxdd.evaluate``, a batch never straddles two epochs and the last batch of
    an epoch wraps around to the start of the same permutation (static shapes).
  * EDC also applies RandAugment before the crop; not implemented. EDC's teachers run
    under fp16 autocast; here in float32.
  * SRe2L's CIFAR relabel does not put the teacher in eval mode (its BN layers use the
    batch statistics); here every teacher is applied in eval mode.
  * 'pad' crop zero-pads in the (normalised) space of the images, i.e. with the mean
    colour, where torchvision pads raw pixels with black.
  * 'best_last_20' evaluates after epochs E − 1 − j·eval_every; UniDD's ``epoch % 10 == 9``
    with E = 1000 is the same set, EDC's ``epoch % 10 == 0`` is shifted by one epoch.
  * AdamW decays every parameter (biases and norm scales too), as UniDD and SRe2L's
    ``net.parameters()``; EDC's ``get_parameters`` may group them differently.

The package: ``config`` (``RelabelConfig``, ``PRESETS``, ``check_relabel_config``, the
lr schedule, ``eval_epochs``), ``train`` (``relabel_loss``, ``augment_batch``,
``make_relabel_train_fn``, ``evaluate_relabel``). The losses themselves are
``jaxdd.train.losses.kl_loss`` and ``edc_loss``. ``make_teacher_fn`` (the teachers'
mean logits) lives in ``jaxdd.pretrain.teacher_eval``. Everything public is re-exported here.
"""

from jaxdd.sre.relabel.config import (CROPS, LOSSES, MIXES, OPTIMIZERS, PRESETS, READOUTS,
                                  SCHEDULES, RelabelConfig, check_relabel_config,
                                  epoch_factor, eval_epochs, lr_schedule)
from jaxdd.sre.relabel.train import (augment_batch, evaluate_relabel,
                                     make_relabel_train_fn, relabel_loss)
from jaxdd.pretrain.teacher_eval import make_teacher_fn

__all__ = ['RelabelConfig', 'PRESETS', 'OPTIMIZERS', 'SCHEDULES', 'LOSSES', 'CROPS',
           'MIXES', 'READOUTS', 'check_relabel_config', 'epoch_factor', 'lr_schedule',
           'eval_epochs', 'relabel_loss', 'augment_batch',
           'make_relabel_train_fn', 'evaluate_relabel', 'make_teacher_fn']
