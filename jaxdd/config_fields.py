"""The one pattern for reading a config section: a NamedTuple of defaults, a table of checks.

Every objective, parameterization and trainer that reads a section of the run's config
(``config.objective``, ``config.parameterization``, ``objective.experts``, ...) declares

    class DcConfig(NamedTuple):        # the fields, their defaults, one docstring
      lr_net: float = 0.01
      ...
    CHECKS = {'lr_net': (lambda v: is_num(v) and v > 0, 'a number > 0'), ...}

    def parse(section) -> DcConfig:
      return read_section(section, DcConfig, 'objective', CHECKS, shared=SHARED_FIELDS)

``read_section`` takes the section's values over the defaults, refuses a field the
NamedTuple does not declare (naming it and the accepted ones: a typo never passes
silently), and checks every value, so a bad config fails in one line naming
``prefix.field`` before anything compiles. Cross-field rules (a batch that must divide
another) stay in the module's ``parse``, after ``read_section``.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np

from jaxdd.errors import ConfigError, is_int, is_num

T = TypeVar('T', bound=NamedTuple)
# field -> (accepted?, what is accepted), e.g. ('an integer >= 1').
Checks = Mapping[str, tuple[Callable[[Any], bool], str]]


def plain(v):
  """ConfigDict / dict / list values -> plain Python (dicts, tuples) for NamedTuples."""
  if hasattr(v, 'to_dict'):
    return {k: plain(x) for k, x in v.to_dict().items()}
  if isinstance(v, Mapping):
    return {k: plain(x) for k, x in v.items()}
  if isinstance(v, list):
    return tuple(plain(x) for x in v)
  return v


def check_fields(cfg: NamedTuple, checks: Checks, prefix: str) -> None:
  """Raises ConfigError naming ``prefix.field`` for the first value ``checks`` refuses."""
  for name, (ok, accepted) in checks.items():
    value = getattr(cfg, name)
    if not ok(value):
      raise ConfigError(f'{prefix}.{name} must be {accepted}, got {value!r}')


def section_values(section: Mapping | None, cls: type[NamedTuple], prefix: str, *,
                   shared: Iterable[str] = ()) -> dict:
  """The section's values as plain Python, refusing a field ``cls`` does not declare
  (``shared`` fields are accepted and kept); for readers that complete the values
  (e.g. with the data's statistics) before building ``cls``."""
  values = plain(section) if section is not None else {}
  shared = set(shared)
  unknown = sorted(set(values) - set(cls._fields) - shared)
  if unknown:
    raise ConfigError(f'{prefix} has unknown field(s) {", ".join(unknown)}; accepted: '
                      f'{", ".join(sorted(set(cls._fields) | shared))}')
  return values


def read_section(section: Mapping | None, cls: type[T], prefix: str, checks: Checks = {},
                 *, shared: Iterable[str] = ()) -> T:
  """``cls`` with the section's values over its defaults, checked.

  Args:
    section: a ConfigDict or mapping (None or missing = all defaults).
    cls: a NamedTuple whose fields and defaults are the section's.
    prefix: the section's name in error messages ('objective', 'objective.experts').
    checks: field -> (predicate, what is accepted), see ``check_fields``.
    shared: fields the section may hold for another reader (e.g. ``name`` or the
      loop's ``batch_real`` in ``config.objective``): accepted and ignored here.

  Raises:
    ConfigError: an unknown field, or a value ``checks`` refuses.
  """
  values = section_values(section, cls, prefix, shared=shared)
  cfg = cls(**{k: v for k, v in values.items() if k in cls._fields})
  check_fields(cfg, checks, prefix)
  return cfg


# Predicates the check tables share: (accepted?, what is accepted).
def positive_int() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: is_int(v) and v >= 1, 'an integer >= 1')


def non_negative_int() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: is_int(v) and v >= 0, 'an integer >= 0')


def positive_num() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: is_num(v) and v > 0, 'a number > 0')


def non_negative_num() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: is_num(v) and v >= 0, 'a number >= 0')


def fraction(closed_right: bool = False) -> tuple[Callable[[Any], bool], str]:
  if closed_right:
    return (lambda v: is_num(v) and 0 <= v <= 1, 'a number in [0, 1]')
  return (lambda v: is_num(v) and 0 <= v < 1, 'a number in [0, 1)')


def boolean() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: isinstance(v, (bool, np.bool_)), 'True or False')


def one_of(choices: Iterable[str]) -> tuple[Callable[[Any], bool], str]:
  choices = tuple(choices)
  return (lambda v: v in choices, 'one of ' + ', '.join(choices))


def seed32() -> tuple[Callable[[Any], bool], str]:
  return (lambda v: is_int(v) and -2**31 <= v < 2**31, 'a 32-bit integer')
