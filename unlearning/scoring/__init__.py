"""Competition-grade scoring: ``unlearning score`` over a cached ensemble of oracles."""

from unlearning.scoring.cache import RecipeCache, recipe_key
from unlearning.scoring.score import RUN_METRICS, parse_seed_range, run_score, summarise

__all__ = ["RUN_METRICS", "RecipeCache", "parse_seed_range", "recipe_key", "run_score", "summarise"]
