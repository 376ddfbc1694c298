"""Analysis: judge videos with facial-expression and micro-expression recognizers and metrics."""
