"""The wire: Engine.IO / Socket.IO codec (``engineio``, ``socketio``), socket.io-client URL semantics
(``client``) and unverified JWT reading (``jwt``). Pure functions, no I/O, no Textual."""
