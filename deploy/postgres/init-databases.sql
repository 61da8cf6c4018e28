-- Runs once, when the Postgres volume is empty (docker-entrypoint-initdb.d), as the superuser POSTGRES_USER.
-- One database per service in core.services.Service; no service reads another's. Each service has a role of its
-- own that owns its database (its migrations run as that role) and is the only role, besides the superuser, that
-- may connect to it. Temporal's role owns Temporal's two databases. Passwords come from the postgres container's
-- environment (docker-compose.yml); a service moved to its own server needs only its role and database there.
\getenv integrations_password INTEGRATIONS_DB_PASSWORD
\getenv deliveries_password DELIVERIES_DB_PASSWORD
\getenv dispatch_password DISPATCH_DB_PASSWORD
\getenv operations_password OPERATIONS_DB_PASSWORD
\getenv trip_monitor_password TRIP_MONITOR_DB_PASSWORD
\getenv state_password STATE_DB_PASSWORD
\getenv device_password DEVICE_DB_PASSWORD
\getenv temporal_password TEMPORAL_DB_PASSWORD

CREATE ROLE integrations LOGIN PASSWORD :'integrations_password';
CREATE ROLE deliveries LOGIN PASSWORD :'deliveries_password';
CREATE ROLE dispatch LOGIN PASSWORD :'dispatch_password';
CREATE ROLE operations LOGIN PASSWORD :'operations_password';
CREATE ROLE trip_monitor LOGIN PASSWORD :'trip_monitor_password';
CREATE ROLE state LOGIN PASSWORD :'state_password';
CREATE ROLE device LOGIN PASSWORD :'device_password';
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';

CREATE DATABASE integrations OWNER integrations;
CREATE DATABASE deliveries OWNER deliveries;
CREATE DATABASE dispatch OWNER dispatch;
CREATE DATABASE operations OWNER operations;
CREATE DATABASE trip_monitor OWNER trip_monitor;
CREATE DATABASE state OWNER state;
CREATE DATABASE device OWNER device;

-- Temporal's persistence and visibility stores; deploy/temporal/setup-schema.sh fills them as the temporal role
-- (the visibility schema's btree_gin is a trusted extension: the database's owner may create it).
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

-- CONNECT (and TEMP) are granted to every role by default: only each owner keeps them.
REVOKE ALL ON DATABASE integrations FROM PUBLIC;
REVOKE ALL ON DATABASE deliveries FROM PUBLIC;
REVOKE ALL ON DATABASE dispatch FROM PUBLIC;
REVOKE ALL ON DATABASE operations FROM PUBLIC;
REVOKE ALL ON DATABASE trip_monitor FROM PUBLIC;
REVOKE ALL ON DATABASE state FROM PUBLIC;
REVOKE ALL ON DATABASE device FROM PUBLIC;
REVOKE ALL ON DATABASE temporal FROM PUBLIC;
REVOKE ALL ON DATABASE temporal_visibility FROM PUBLIC;
