-- Runs once, when the Postgres volume is empty (docker-entrypoint-initdb.d).
-- One database per service in core.services.Service; no service reads another's.
-- A service moved to its own server needs only its database created there.
CREATE DATABASE integrations;
CREATE DATABASE deliveries;
CREATE DATABASE dispatch;
CREATE DATABASE operations;
CREATE DATABASE trip_monitor;
CREATE DATABASE state;
CREATE DATABASE device;

-- Temporal's persistence and visibility stores; deploy/temporal/setup-schema.sh fills them.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
