"""Request dependencies as ``Annotated`` aliases: the store and settings the app owns."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hookagent.settings import Settings
from hookagent.store import Store


def get_store(request: Request) -> Store:
    """The store built by the app's lifespan."""
    store: Store = request.app.state.store
    return store


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
