"""The audit of one dataset: each model's predictions (model_predictions, external), every statistic run on
them (audit, age_adjusted, intervals, decisions, noise_audit), the rules and the regression gate
(thresholds, regression), the leaderboard and scorecard, and the robustness audit (robustness)."""
