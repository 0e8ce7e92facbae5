"""Names a config may use, mapped to the functions that build them.

A new method is a new entry here plus a config: the loop never branches on a name.
"""

from jaxdd.errors import ConfigError
from jaxdd.objectives.bptt import make_bptt
from jaxdd.objectives.dc import make_dc
from jaxdd.objectives.dm import make_dm
from jaxdd.objectives.krr import make_frepo, make_kip
from jaxdd.objectives.mtt import make_mtt
from jaxdd.parameterizations.fred import make_fred
from jaxdd.parameterizations.pixels import make_pixels
from jaxdd.parameterizations import poco
from jaxdd.parameterizations import poster_geometry
from jaxdd.parameterizations.poster import make_poster


def _pixels(config, num_classes, image_shape, ds=None):
  del ds
  p = config.parameterization
  return make_pixels(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                     init=p.get('init', 'real'), learn_labels=p.get('learn_labels', False))


def _fred(config, num_classes, image_shape, ds=None):
  del ds
  p = config.parameterization
  norm = p.get('dct_norm', 'ortho')
  # --config.parameterization.dct_norm=none on a command line arrives as a string.
  norm = None if isinstance(norm, str) and norm.lower() == 'none' else norm
  return make_fred(num_classes=num_classes, ipc=config.ipc, image_shape=image_shape,
                   msz=p.get('msz', 64), dct_norm=norm,
                   learn_labels=p.get('learn_labels', False))


def _poster(config, num_classes, image_shape, ds=None):
  p = config.parameterization
  grid = p.get('grid', None)
  patches = p.get('patches', None)
  shape = p.get('poster_shape', None)
  order = p.get('class_order', None)
  if isinstance(order, str):   # 'poco_text' / 'poco_pixels': PoCO on this data set
    if ds is None:
      raise ConfigError(f'parameterization.class_order={order!r} needs the data set')
    order = poco.resolve_class_order(
        order, ds, tuple(grid) if grid else poster_geometry.default_grid(num_classes))
  return make_poster(num_classes=num_classes, image_shape=image_shape, ipc=config.ipc,
                     grid=tuple(grid) if grid else None,
                     patches=tuple(patches) if patches else None,
                     learn_labels=p.get('learn_labels', False),
                     label_cells=p.get('label_cells', None) or None,
                     class_order=order if order is not None and len(order) else None,
                     poster_shape=tuple(shape) if shape else None,
                     init=p.get('init', 'tiles'),
                     fixed_labels=p.get('fixed_labels', 'majority'),
                     label_pool=p.get('label_pool', 'area'))


PARAMETERIZATIONS = {'pixels': _pixels, 'fred': _fred, 'poster': _poster}
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
