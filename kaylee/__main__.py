"""``python -m kaylee``: the same as the ``kaylee`` command."""

import sys

from kaylee import main

sys.exit(main())
