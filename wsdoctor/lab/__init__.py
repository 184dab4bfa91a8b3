"""The local lab: real nginx + three backends + OpenSSH sshd on loopback, per scenario.

The backends are python-socketio (``backends="python"``) or Node socket.io 4 (``backends="node"``), or
the server a scenario is about (Node socket.io 2.x, a plain WebSocket server); their npm packages are
pinned in ``wsdoctor/lab/node/package-lock.json``. ``Lab.up("seed")`` starts one; ``Lab.load(dir)`` finds it again; ``lab.down()`` stops exactly its pids.
See ``wsdoctor/lab/scenarios/*.conf`` for what each scenario breaks.
"""

from wsdoctor.lab.catalog import SCENARIOS, Scenario
from wsdoctor.lab.lab import Lab, LabError

__all__ = ["SCENARIOS", "Lab", "LabError", "Scenario"]
