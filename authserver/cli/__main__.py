"""`python -m authserver.cli` (the purger the server starts runs this way)."""
from . import main

main()
