"""Measuring tools, apart from the core they measure.

bench     our training pipeline against the textbook one, inference latency, cold start
textbook  the torchvision-style pipeline that bench measures ours against
compute   arithmetic per image, the machine's matrix-product peak, CPU seconds
latency   inference and cold-start timing of the shipped networks
loadtest  many browser sessions classifying in the app at once
"""
