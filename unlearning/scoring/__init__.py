"""Competition-grade scoring: ``unlearning score`` over a cached ensemble of oracles."""

from unlearning.scoring.cache import RecipeCache, recipe_key
from unlearning.scoring.score import RUN_METRICS, run_score, summarise
from unlearning.scoring.setting import ScoreSetting, parse_seed_range

__all__ = ["RUN_METRICS", "RecipeCache", "ScoreSetting", "parse_seed_range", "recipe_key", "run_score", "summarise"]
