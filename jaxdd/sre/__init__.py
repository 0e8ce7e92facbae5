"""Squeeze-recover-relabel (SRe2L, CFM, EDC): the pipeline (``pipeline``), the recover
stage (``recover``), the relabel protocol (``relabel``) and the recover losses
(``losses``: teacher statistics, UniDD's spectral filters, EDC's terms)."""
