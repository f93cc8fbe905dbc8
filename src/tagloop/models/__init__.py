"""Models: features and labels in the rule language, point-in-time training sets,
LightGBM training with a logistic-regression baseline, a registry of versions with a
promotion gate, batch scoring into ``model_scores`` (read by ``score('name')`` in rules).

Modules: `spec` (the compiled definition), `features` (point-in-time evaluation and
encoding), `training` (fit and metrics), `registry` (stored versions, promotion),
`scoring` (batch scores and model tags), `explain` (one score's feature contributions),
`onchange` (scoring on change, debounced), `schedule` (training runs, when they are due).
"""

from __future__ import annotations
