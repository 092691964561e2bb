"""Measurements behind the Why they differ page: one module per measurement, none importing streamlit.

gradients  weight-gradient norm per layer against depth (also recorded by the trainer)
cost       parameters, multiply-accumulates, latency, checkpoint size
quality    confusion matrix, per-class accuracy, calibration, where the networks disagree
gradcam    Grad-CAM heat maps;  filters: first-layer filters and feature maps;  se: SE channel weights
reuse      DenseNet feature reuse;  why_sentences: the sentences the page writes from all of these
analyze    the `analyze` command: everything that needs the test split, stored beside each checkpoint
           (analysisfile: analysis.json)
"""
