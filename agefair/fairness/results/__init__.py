"""The audit's results as typed records: summary.json (summary, summary_parts and the *_types modules, on
record's base), robustness.json (robustness_result), and reading either file back (result)."""
