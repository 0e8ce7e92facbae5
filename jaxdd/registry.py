"""Names a config may use, mapped to the functions that build them.

A new method is a new entry here plus a config: the loop never branches on a name.
A parameterization's entry is ``(config, num_classes, image_shape, ds=None) ->
Parameterization`` (its module's ``from_config``: the config section read by its
``parse``); an objective's is ``make_*(config) -> Objective``.
"""

from jaxdd.errors import ConfigError
from jaxdd.objectives.bptt import make_bptt
from jaxdd.objectives.dc import make_dc
from jaxdd.objectives.dm import make_dm
from jaxdd.objectives.krr import make_frepo, make_kip
from jaxdd.objectives.trajectory_matching import make_mtt
from jaxdd.parameterizations import fred
from jaxdd.parameterizations import pixels
from jaxdd.parameterizations import poster


PARAMETERIZATIONS = {'pixels': pixels.from_config, 'fred': fred.from_config,
                     'poster': poster.from_config}
FRACTIONAL_IPC = ('poster',)   # parameterizations whose ipc may be a fraction (0.3, 0.5)
OBJECTIVES = {'dm': make_dm, 'dc': make_dc,   # 'dc' is DSA with objective.dsa=True
              'bptt': make_bptt,              # BPTT, truncated BPTT and RaT-BPTT
              'kip': make_kip, 'frepo': make_frepo,
              'mtt': make_mtt}                # MTT, DATM and PAD by options


def get_parameterization(config, num_classes, image_shape, ds=None):
  """The configured parameterization; ``ds`` (the loaded data) for data-driven options."""
  name = config.parameterization.name
  if name not in PARAMETERIZATIONS:
    raise ConfigError(f'parameterization.name must be one of '
                      f'{", ".join(PARAMETERIZATIONS)}, got {name!r}')
  return PARAMETERIZATIONS[name](config, num_classes, image_shape, ds)


def get_objective(config):
  name = config.objective.name
  if name not in OBJECTIVES:
    raise ConfigError(f'objective.name must be one of {", ".join(OBJECTIVES)}, '
                      f'got {name!r}')
  return OBJECTIVES[name](config)
