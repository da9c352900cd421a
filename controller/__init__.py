"""cluster-tune's controller: ``plan`` (spec to step graph), ``run`` (backends), ``analysis``,
``report``, ``models`` (the registry), ``practice`` (``ctune train`` and its kin), and the
command line on top (``cli``, ``parser``)."""

import controller.run  # noqa: F401  (the backends register their spec sections)
