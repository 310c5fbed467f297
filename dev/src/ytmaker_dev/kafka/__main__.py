"""``python -m ytmaker_dev.kafka COMMAND``: see :mod:`ytmaker_dev.kafka`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
