# twistd imports every plugin module on every run: this one only names the tap module.
from twisted.application.service import ServiceMaker

chat = ServiceMaker(
    "chatserver",
    "chatserver.daemon.tap",
    "Real-time chat server: Django Channels on Daphne, in-process",
    "chat",
)
