"""The HTTP gateway (ASGI): validates, records and enqueues jobs; serves status and objects."""
