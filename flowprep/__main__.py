import sys

from flowprep.entry import main

sys.exit(main())
