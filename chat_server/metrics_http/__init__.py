"""Code run by the ``metrics-http`` thread (only with ``--metrics``): the Prometheus endpoint."""
