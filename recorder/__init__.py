"""Turns a room's encoded media into fMP4 HLS segments and an MP4 in the object store."""
