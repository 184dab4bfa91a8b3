"""Changing the proxy: ``wsdoctor apply`` (fixes, a generated config, rollback) and the setup wizard's discovery.

Headless and Textual-free. A change is a transaction on the proxy host (``transaction.py``): preflight, lock,
diff, backup, atomic write, ``nginx -t``, reload, verify, and restore on any failure. ``plans.py`` says what
to change and how to judge it, ``diffs.py`` applies the checks' diffs to the bytes on the host, ``hostfs.py``,
``lock.py``, ``backup.py`` and ``nginxctl.py`` do the host's side, ``command.py`` ties them to the CLI and the
TUI, ``discover.py`` finds what the setup wizard need not ask.
"""
