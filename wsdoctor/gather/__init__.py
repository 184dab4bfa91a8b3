"""Gathering the facts of a run.

- ``local``: what this machine gives synchronously (the client request, a config file or dump, ``nginx
  -v``), shared by the gatherers and the event-loop-free ``check --offline``;
- ``plan``: which gatherers a target needs, all run concurrently by the diagnosis;
- ``probes``: the probes through the proxy and at the backends;
- ``remote``: the proxy host's facts over the run's ``RemoteSession`` and the live log tail.

Nothing is imported here: ``check --offline`` imports ``gather.local`` alone and pays for no event loop.
"""
