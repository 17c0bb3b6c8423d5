"""Imported by the grading pool's fork server only (``set_forkserver_preload``): importing it grades one pair that
goes all the way to the symbolic parser, so sympy's and math-verify's first-use set-up happens once in the server
and every forked worker starts warm, instead of each paying it (about half a second of CPU) on its first pair."""

from asym_eval.grading import grade_in_this_process

# 2/4 against 0.5: no cheap step settles it (close values are left to math-verify's rounding).
grade_in_this_process("\\boxed{\\frac{2}{4}}", "0.5")
