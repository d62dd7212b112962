__version__ = "0.1.0"

import logging as _logging

# A library logs; the application (or the subcell CLI) decides where messages go.
_logging.getLogger("subcell").addHandler(_logging.NullHandler())
