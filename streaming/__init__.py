"""The live server and composition root: HTTP app, WHIP/WHEP signaling, rooms, forwarding."""
