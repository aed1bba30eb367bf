"""The application: the command line, experiment protocols, figures and reports."""
