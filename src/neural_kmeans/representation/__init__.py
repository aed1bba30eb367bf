"""The learned space of ``features="learned"``: autoencoder, neighbour graph, UMAP
layout, and the parts it gives the core loop. Imports only from :mod:`neural_kmeans.core`.
"""
