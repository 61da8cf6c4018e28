"""The desks: what each audience of the platform may ask of it, in the platform's own terms.

A desk is built once, with the databases, the Temporal client and whatever else it needs, and the HTTP API
only parses requests, asks a desk and renders its answer. The partner accounts (`desks.accounts`) tell who a
partner is by its credentials and keep its stores; the partner desk (`desks.partner`) takes quotes and orders
and changes them; the order views (`desks.views`) answer the partner's questions about its orders; the robot
desk (`desks.robot`) takes a robot's events and heartbeats. The views read one delivery across the seven
databases through `desks.records`, as the operators' CLI does.
"""
