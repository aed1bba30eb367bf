"""``python -m neural_kmeans`` runs the command line."""

import sys

from neural_kmeans.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
