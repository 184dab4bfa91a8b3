"""The nginx engine: what nginx does with the client's request, decided from its configuration alone.

- ``model``: the configuration as Directives with their real file:line (includes expanded in place);
- ``parse``: crossplane's parsing semantics, fast (crossplane itself for files with Lua blocks);
- ``load``: ``--nginx-conf`` (+ ``--root``) and ``--nginx-dump`` into a Config, errors with file:line;
- ``routing``: server and location selection, URI normalisation, the automatic 301, rewrites, and the URI
  ``proxy_pass`` sends, ported from nginx and held to a real nginx by tests/nginx/test_differential.py;
- ``effective``: inheritance (all-or-nothing ``proxy_set_header``/``add_header``), version-aware defaults;
- ``version``: ``nginx -v``;
- ``patch`` / ``generate``: fixes as diffs, and new configurations (the checks' side).

Nothing here imports Textual; heavy modules are imported only where used.
"""
