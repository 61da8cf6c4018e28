"""The desks: what each audience of the platform may ask of it, in the platform's own terms.

A desk is built once, with the databases, the Temporal client and whatever else it needs, and the HTTP API
only parses requests, asks a desk and renders its answer. The partner desk (`desks.partner`) takes orders,
quotes and the partner's questions about them; the robot desk (`desks.robot`) takes a robot's events and
heartbeats. Both read one delivery across the seven databases through `desks.records`, as the operators'
CLI does.
"""
