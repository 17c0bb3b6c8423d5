"""asym_eval: Avg@k evaluation on the paper's five math benchmarks and the grader the training reward shares
(console script ``asym-eval``; see docs/evaluation.md)."""
