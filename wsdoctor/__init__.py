"""wsdoctor: troubleshoot WebSocket / Socket.IO services behind nginx."""

__version__ = "0.1.0"
