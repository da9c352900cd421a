"""The contract between the controller and the jobs: the one place both sides agree on.

* ``errors``: the errors both report, and the exit codes they map to;
* ``steps``: step kinds, ids, where a step lives in the store, when it is done;
* ``params``: one frozen dataclass of parameters per step kind (also the spec's sections);
* ``intertrainings``: the registry of inter-trainings (objective, upstream, clusters, section);
* ``inputs``: the roles of a step's inputs, and which roles each kind takes from where;
* ``outputs``: what each kind writes, and readers for what the controller reads;
* ``staging``: the staged-dataset layout, its writer and reader, the corpus order;
* ``sampling``: the labeled samples every setting of a (budget, repetition) shares;
* ``models``: model names known offline;
* ``typed``: plain data to frozen dataclasses, every problem named.

It imports no torch, transformers or scikit-learn: the controller imports from ``jobs``
only this package, ``jobs.storage`` and ``jobs.data`` (import-linter checks).
"""
