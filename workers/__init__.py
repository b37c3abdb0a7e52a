"""The service: one product service behind every face, Dask, the CLI.

`workers.products` answers every request for a product (recipe index
or Butler, cache, broker); the faces call it: the HTTP routes
(`workers.api`, `workers.campaign_api`) and the campaign runner
(`workers.campaigns`). `workers.broker` and `workers.tasks` run misses
on Dask; `workers.services` wires the parts from `workers.settings`;
`workers.cli` is the ``recreate`` command.
"""
