"""``python -m neural_kmeans`` runs the command line."""

import sys

if __name__ == "__main__":
    try:
        from neural_kmeans.app.cli import main
    except KeyboardInterrupt:  # Ctrl-C while the command line itself loads
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    sys.exit(main())
