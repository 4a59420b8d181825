import sys

from face3d.cli import main

sys.exit(main())
