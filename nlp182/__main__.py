"""``python -m nlp182 ...`` runs the ``nlp182`` command, where its script is not on ``PATH``."""

import sys

from nlp182.cli import main

sys.exit(main())
