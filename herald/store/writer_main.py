"""Entry point of the log writer process: `python -m herald.store.writer_main ...`.

Kept apart from herald.store.writerprocess (which herald.store imports) so that running it with
`-m` does not import the same module twice.
"""

import sys

from herald.store.writerprocess import main

sys.exit(main())
