"""The resampling engine: counter-based random draws keyed by each row's id (keyed_draws), bootstrap
weights, cell layouts and cell sums (resampling), and many statistics on one draw (replicates)."""
