"""What every snowload screen shares: typed access to the app and its client."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from tui.client import RunClient

if TYPE_CHECKING:
    from tui.app import SnowloadApp


class AppScreen(Screen[None]):
    @property
    def snowload(self) -> SnowloadApp:
        return cast("SnowloadApp", self.app)

    @property
    def client(self) -> RunClient | None:
        return self.snowload.client

    async def action_back(self) -> None:
        """Back to the screen below, or to the Runs screen when this is the first one."""
        if len(self.app.screen_stack) > 2:
            await self.app.pop_screen()
        else:
            await self.snowload.action_runs()
