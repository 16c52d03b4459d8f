"""The context a flow runs in: the message, the person, the saved state, what to say.

Flows never import a channel. They read `ctx.msg` (with `ctx.option` resolved from the
menu the person answered), change `ctx.conv`, and append `Reply`s with `ctx.say`.
Messages to other people (a grid chief's new assignment) go through `ctx.notify`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.channels import spec_for
from bot.domain.messages import Choice, Inbound, Location, Reply
from bot.services.notify import PersonalMessage
from bot.services.reference import ReferenceData
from store.conversations import Conversation
from store.db import Connection
from store.people import Contact

Labeler = Callable[..., str]


@dataclass
class Context:
    """One inbound message being handled."""

    conn: Connection
    msg: Inbound
    contact: Contact
    conv: Conversation
    reference: ReferenceData
    now: datetime
    locale: str
    labeler: Labeler
    option: str | None = None
    replies: list[Reply] = field(default_factory=list)
    notices: list[PersonalMessage] = field(default_factory=list)
    # An aside (SMS HELP, STATUS N): the menu the person is answering stays valid.
    keep_menu: bool = False
    # This message opts the sender out (SMS 退订): its replies are the one confirmation.
    opting_out: bool = False

    @property
    def data(self) -> dict[str, Any]:
        """The current flow's saved answers."""
        return self.conv.data

    def label(self, key: str, **values: Any) -> str:
        """A short text in the person's language."""
        return self.labeler(self.locale, key, **values)

    def say(self, template: str, choices: Sequence[Choice] = (), *,
            ask_location: bool = False, attach: Sequence[int] = (),
            location: Location | None = None, **context: Any) -> None:
        """Queue a reply to the sender; `attach` lists media ids to show with it, and
        `location` a place to show on a map."""
        self.replies.append(Reply(template, context, tuple(choices), ask_location,
                                  tuple(attach), location))

    def notify(self, person_id: int, template: str, choices: Sequence[Choice] = (),
               **context: Any) -> None:
        """Queue a message to another person, where they last wrote from."""
        self.notices.append(PersonalMessage(person_id, Reply(template, context, tuple(choices))))

    def goto(self, flow: str, step: str) -> None:
        """Move the conversation to a step of a flow."""
        self.conv.flow, self.conv.step = flow, step

    def finish(self) -> None:
        """End the current flow and forget its answers (engine keys starting with _ stay)."""
        self.conv.flow = self.conv.step = None
        for key in [k for k in self.conv.data if not k.startswith("_")]:
            del self.conv.data[key]


def short_list_size(ctx: Context) -> int:
    """How many cases a list shows: all on button channels, 3 on SMS (two segments)."""
    return 20 if spec_for(ctx.msg.channel).buttons else 3
