"""Input and output: data sets and their download, model files, checkpoints.

Never imports the estimator: persistence reads and writes plain state.
"""
