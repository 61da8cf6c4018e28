"""What every service's activity class shares: its own session maker and the settings."""

import inspect

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from core.settings import Settings


class ServiceActivities:
    """Base of the one activity class per service; each attempt opens one session and commits once. `temporal`
    is the worker's client, for a service that tells workflows of what it did (None: it tells nobody)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 temporal: Client | None = None):
        self.sessions = sessions
        self.settings = settings
        self.temporal = temporal

    def activities(self) -> list:
        """The bound methods marked `@activity.defn`, ready to register on a Worker."""
        return [
            getattr(self, name)
            for name, member in inspect.getmembers(type(self), inspect.isfunction)
            if hasattr(member, "__temporal_activity_definition")
        ]
