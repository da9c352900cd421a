"""cluster-tune jobs: the steps of Cluster & Tune.  Never imports ``controller``."""
