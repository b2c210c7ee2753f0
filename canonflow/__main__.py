"""``python -m canonflow`` runs the command line."""

from canonflow.cli import main

raise SystemExit(main())
