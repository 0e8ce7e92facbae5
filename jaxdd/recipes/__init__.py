"""Recipes: the settings of each method, as the config files (``configs/*.py``) call them.

A config file parses its argument (``config_utils.parse_arg``) and calls one recipe;
the recipe builds the ConfigDict from ``config_utils.base_config`` (or
``recipes.sre.sre_config``) at the paper's or the authors' code's settings, or at the
CPU-sized ones jaxdd measured. Modules:

  datasets    one row of settings per data set (digits, MNIST, CIFAR-10/100, CUB)
  matching    DC, DSA, DM; FreD and PAD's modules under them
  trajectory  MTT, DATM, PAD, FreD + MTT
  unrolled    RaT-BPTT, PoDD
  kernel      KIP, FRePo
  sre         SRe2L, CFM, EDC (``pipeline='sre'``)

Layering: recipes sit beside ``jaxdd.launch`` and ``jaxdd.config_utils`` at the top;
they import the library, nothing in the library imports them. Measured results and
experiment logs: docs/results/.
"""
