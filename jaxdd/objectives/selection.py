"""PAD's filtering of information embedding (FIEM) outside trajectory matching.

PAD (Li et al., appendix "Gradient Matching" / "Distribution Matching", Tables 6-7)
carries its parameter selection, "discarding a certain ratio of parameters in the
shallow layers", to DC and DM:

* DC: the gradient-matching distance is summed over the parameters that remain, i.e.
  the first ⌊α·P⌋ entries of the depth-ordered parameter vector (``models.depth_mask``,
  the same count as trajectory matching's ``mask_weights``) leave both gradients.
* DM: "we modify the implementation of the network such that outputs of each layer in
  the model are returned by the forward function. Then, we perform parameter selection
  following the same practice": the matched embedding becomes the concatenation of every
  block's output (depth order; ``features['layers']``), whose first ⌊α·D⌋ entries are
  dropped (``feature_mask``).

PAD does not publish this code; the entry-level masks are jaxdd's reading of it, chosen
to match the trajectory-matching mask exactly.

Config: ``objective.param_mask`` ('none' or 'depth') and ``objective.mask_ratio`` α in
[0, 1), the fields trajectory matching uses.
"""

import numpy as np

from jaxdd.errors import ConfigError, is_num

PARAM_MASKS = ('none', 'depth')


def mask_ratio(obj_cfg) -> float | None:
  """α of ``objective.{param_mask, mask_ratio}``, or None when selection is off.

  Raises:
    ConfigError: naming the field and the accepted values.
  """
  kind = obj_cfg.get('param_mask', 'none')
  ratio = obj_cfg.get('mask_ratio', 0.0)
  if kind not in PARAM_MASKS:
    raise ConfigError(f'objective.param_mask must be one of {", ".join(PARAM_MASKS)} '
                      f'for objective {obj_cfg.get("name")!r}, got {kind!r}')
  check_mask_ratio(ratio)
  return float(ratio) if kind == 'depth' else None


def check_mask_ratio(ratio) -> None:
  """``objective.mask_ratio`` must be a number in [0, 1) (DM, DC and MTT alike)."""
  if not is_num(ratio) or not 0 <= ratio < 1:
    raise ConfigError(f'objective.mask_ratio must be a number in [0, 1), got {ratio!r}')


def feature_mask(layer_sizes, ratio: float) -> np.ndarray:
  """0/1 float32 [Σ sizes]: 0 on the first ⌊ratio·D⌋ entries of the depth-ordered
  concatenation of the layers' flattened outputs (DM under PAD's selection)."""
  total = int(sum(layer_sizes))
  return (np.arange(total) >= int(ratio * total)).astype(np.float32)
