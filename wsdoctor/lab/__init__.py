"""The local lab: real nginx + three python-socketio backends + OpenSSH sshd on loopback, per scenario.

``Lab.up("seed")`` starts one; ``Lab.load(dir)`` finds it again; ``lab.down()`` stops exactly its pids.
See ``wsdoctor/lab/scenarios/*.conf`` for what each scenario breaks.
"""

from wsdoctor.lab.catalog import SCENARIOS, Scenario
from wsdoctor.lab.lab import Lab, LabError

__all__ = ["SCENARIOS", "Lab", "LabError", "Scenario"]
