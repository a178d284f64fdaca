"""The statistics of predictions against labels: grouped metrics (metrics, specs), paired comparisons and
the credibly-best decision (compare, decide), age-standardised and age-aware accuracy (standardise,
age_accuracy), age gates (gates, gate_bootstrap, gate_types), interval coverage (conformal_eval), label-noise
suspects (label_noise), power (power) and image corruptions (corruptions). Each takes arrays or frames and
returns typed results; none knows about an audit's files."""
