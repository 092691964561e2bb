"""The Why they differ page's views, one module per view; the measurements come from cifarnets.analysis."""
