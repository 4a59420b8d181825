import sys

from avatars.cli import main

sys.exit(main())
