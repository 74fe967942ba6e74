"""Frames to sockets: local groups, the channel layer, presence."""
