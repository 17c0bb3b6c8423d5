"""Imported by the grading pool's fork server only (``set_forkserver_preload``): importing it grades a few pairs
that go all the way to the symbolic parser, so sympy's and math-verify's first-use set-up (lazy imports, the
LaTeX parser's prediction tables) happens once in the server and every forked worker starts warm, instead of
each paying it (about half a second of CPU) on its first pairs. The shapes are those the cheap steps leave to
the parser most often: close numbers, text, sets and unions, equations, the plus-minus sign."""

from asym_eval.verdicts import grade_in_this_process

for response, answer in [
    ("\\boxed{\\frac{2}{4}}", "0.5"),  # close values: math-verify's rounding decides
    ("\\boxed{\\text{(B)}}", "\\text{Navin}"),
    ("\\boxed{(0,9) \\cup (0,36)}", "(0,9) \\cup (9,36)"),
    ("\\boxed{y = 8x + 3}", "y = 2x + 3"),
    ("\\boxed{1 \\pm \\sqrt{89}}", "1 \\pm \\sqrt{19}"),
    ("\\boxed{\\{7\\pm\\sqrt{5},-2\\}}", "\\{1\\pm\\sqrt{5},-2\\}"),
]:
    grade_in_this_process(response, answer)
