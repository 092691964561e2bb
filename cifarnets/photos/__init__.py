"""Accuracy on real photos: full-size pictures of the ten classes, classified as an upload would be.

check       the `photos` command: each network, each way of preparing a photo, each number of views
bootstrap   its arithmetic: class-balanced accuracy and (paired) bootstrap intervals
packageset  the package set: photos and composites from packages this machine can install
"""
