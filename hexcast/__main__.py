"""``python -m hexcast`` is the ``hexcast`` command."""

from hexcast.cli import main

main()
