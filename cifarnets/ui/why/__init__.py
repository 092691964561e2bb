"""The Why they differ page's tabs, one module per tab; the measurements come from cifarnets.analysis."""
