"""World Models (Ha & Schmidhuber 2018): its phases (collect → V → M → C), their data and figures."""

from worldmodels.train.world_models import phases  # noqa: F401  (registers the phase kinds)
