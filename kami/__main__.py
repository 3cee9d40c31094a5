"""``python -m kami``: the same as the ``kami`` command."""

import sys

from kami._main import main

sys.exit(main())
