"""Imported by the grading pool's fork server only (``set_forkserver_preload``): importing it runs one symbolic
comparison, so sympy's and math-verify's first-use set-up happens once in the server and every forked worker
starts warm, instead of each paying it (about half a second of CPU) on its first pair."""

from asym_eval.grading import grade_in_this_process

grade_in_this_process("\\boxed{\\frac{1}{2}}", "0.5")
