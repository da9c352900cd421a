"""cluster-tune's controller: ``plan`` (spec to step graph), ``run`` (backends), ``analysis``,
``report``, and the command line on top (``cli``, ``parser``, ``practitioner``)."""

import controller.run  # noqa: F401  (the backends register their spec sections)
