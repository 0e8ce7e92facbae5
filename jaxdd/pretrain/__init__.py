"""Networks trained on the real data before distillation, and what is read from them:
expert trajectories (MTT, DATM, PAD) and their store, squeeze-stage teachers (SRe2L, CFM,
EDC) and their store, EL2N difficulty scores and PAD's schedules, the filtered real pool."""
