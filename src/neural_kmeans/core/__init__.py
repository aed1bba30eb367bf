"""The core: the neural K-means loop, its steps, networks, checks and metrics.

Imports nothing from the layers above it (representation, io, estimator, app).
"""
