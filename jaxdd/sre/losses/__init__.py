"""The recover stage's losses: teacher statistics (``statistics``), UniDD's spectral
filters and CFM (``spectral``), EDC's soft category-aware matching and flatness (``edc``)."""
