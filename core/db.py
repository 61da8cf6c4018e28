"""Async engines and session makers, one per service database, made at the composition root."""

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.services import Service
from core.settings import Settings


class Databases:
    """The engines of the services one process talks to."""

    def __init__(self, settings: Settings, services: Iterable[Service] = tuple(Service), pool_size: int = 5):
        # No pre-ping: on asyncpg it costs three round trips (BEGIN, SELECT, ROLLBACK) per checkout, more than
        # most units of work. A connection that died with its server fails once; SQLAlchemy then renews the
        # whole pool, and the activity retries (the API answers 5xx once and the client resends).
        self.engines: dict[Service, AsyncEngine] = {
            service: create_async_engine(settings.database_url(service), pool_size=pool_size, max_overflow=pool_size)
            for service in services
        }
        self._makers = {
            service: async_sessionmaker(engine, expire_on_commit=False) for service, engine in self.engines.items()
        }
        self._autocommit = {service: engine.execution_options(isolation_level="AUTOCOMMIT")
                            for service, engine in self.engines.items()}
        self._readers = {service: async_sessionmaker(engine, expire_on_commit=False)
                         for service, engine in self._autocommit.items()}

    def sessions(self, service: Service) -> async_sessionmaker[AsyncSession]:
        """The session maker of one service's database."""
        return self._makers[service]

    def lookups(self, service: Service) -> async_sessionmaker[AsyncSession]:
        """Sessions whose statements each commit on their own (robot polls, credentials, a partner's create): no
        BEGIN and COMMIT round trips.

        Each statement sees its own snapshot, so use these where one query answers, or where one statement makes
        the whole write; writes and reads that must agree go through `sessions`.
        """
        return self._readers[service]

    def reader(self, service: Service) -> AsyncConnection:
        """A connection for read-only Core statements, each its own snapshot, with no BEGIN and COMMIT round trips
        and no ORM session: the robot desk's hot path (`async with databases.reader(service) as connection`)."""
        return self._autocommit[service].connect()

    async def check(self, service: Service) -> None:
        """Run a trivial query, raising if the database cannot be reached."""
        async with self.engines[service].connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        for engine in self.engines.values():
            await engine.dispose()
