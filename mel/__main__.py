"""`python -m mel STAGE ...` is the `mel` command (mel.cli)."""
import sys

from mel.cli import main

sys.exit(main())
