"""``python -m dvdlib ...`` is the ``dvd`` command (so ``accelerate launch -m dvdlib prefetch ...`` works)."""

import sys

from .cli import main

sys.exit(main())
