"""What every service's activity class shares: its own session maker and the settings."""

import inspect

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from temporalio.client import Client

from core.settings import Settings


class ServiceActivities:
    """Base of the one activity class per service; each attempt opens one session and commits once, or makes its
    write in one statement (`statements`), or only reads (`lookups`). `temporal` is the worker's client, for a
    service that tells workflows of what it did (None: it tells nobody)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 temporal: Client | None = None):
        self.sessions = sessions
        self.settings = settings
        self.temporal = temporal
        self._autocommit = sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")
        # Sessions whose statements each commit on their own: for a read that one query answers.
        self.lookups = async_sessionmaker(self._autocommit, expire_on_commit=False)

    def statements(self) -> AsyncConnection:
        """A connection on which each statement commits on its own, with no BEGIN and COMMIT round trips: for a
        write that one self-contained statement makes (`async with self.statements() as connection`)."""
        return self._autocommit.connect()

    def activities(self) -> list:
        """The bound methods marked `@activity.defn`, ready to register on a Worker."""
        return [
            getattr(self, name)
            for name, member in inspect.getmembers(type(self), inspect.isfunction)
            if hasattr(member, "__temporal_activity_definition")
        ]
