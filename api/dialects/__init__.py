"""Partner dialects of the API: DoorDash Drive v2, Uber Direct and Olo dispatch, each on the partner desk.

Each module parses its dialect's requests into the desk's terms (`desks.orders`), renders the desk's answers
and errors in the dialect's words, and reads its vocabulary from `desks.dialects`, which the status callbacks
share.
"""
