import sys

from omnitensor.cli import main

sys.exit(main())
