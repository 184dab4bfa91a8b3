"""The proxy host: reach it (SSH or this machine), gather what nginx really runs, read its logs as evidence.

- ``runner``  — the Runner interface (run / read_file / stream_lines / tail / forward) and LocalRunner;
- ``ssh``     — SshRunner over one paramiko connection: ssh config resolution (``ssh -G``), host key policy
  (``--accept-host-key``), ProxyJump / ProxyCommand, port forwarding for backend probes;
- ``gather``  — the running nginx master (-p/-c/-g), ``nginx -V/-T/-t``, ``ss``, backend hints and auth logs,
  the log files that apply to a location, their tails;
- ``logs``    — error/access-log classification into LogEvents, the fast whole-file scan, live tails;
- ``session`` — one session per run shared by the gatherer, the backend probes and the TUI's live logs;
- ``text``    — stripping escape/control sequences from remote text; ``errors`` — the one-sentence errors.

Nothing here imports Textual; importing this package imports nothing else (paramiko only with ``ssh``).
"""
