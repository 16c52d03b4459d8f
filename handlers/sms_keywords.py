"""SMS keywords: answered before any dialogue, and without breaking the one under way.

- STOP and Twilio's other stop words (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE,
  OPTOUT): the number is opted out. Twilio answers these itself and blocks our messages to
  the number (error 21610) until it opts in again, so gridbot adds no confirmation.
- 退订 and TD (the Chinese convention, unknown to Twilio): opted out, with one
  confirmation, which is the last message the number gets.
- START, UNSTOP, 订阅 (and YES while opted out, as Twilio does): resumed.
- HELP, INFO, 帮助: the short SMS help.
- STATUS N, 查询 N: the status of case N, for its reporter and followers (and staff).

CANCEL is a Twilio stop word: on SMS it unsubscribes, whatever gridbot would make of it,
so here it does too; 取消 (or /cancel) leaves a dialogue. While a number is opted out,
its messages other than START are not handled and nothing is queued for it. Keywords keep
the dialogue's state and the menu being answered. Whole messages only ("STOP" yes,
"please stop" no), in any letter case, like Twilio.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bot.domain.channels import spec_for
from bot.domain.messages import Inbound, Kind
from handlers import common, mycases
from handlers.base import Context
from store import people as people_store

TWILIO_STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                         "OPTOUT"})
OWN_STOP = frozenset({"退订", "TD"})
START = frozenset({"START", "UNSTOP", "订阅"})
HELP = frozenset({"HELP", "INFO", "帮助"})
STATUS = re.compile(r"^(?:status|查询)(?:$|[\s:：#]+|(?=\d))(.*)$", re.IGNORECASE | re.DOTALL)

# Commands an SMS parser makes from what Twilio tells it (not typed by people).
KEYWORD_COMMAND = "sms_keyword"  # args: stop, start or help (Twilio's OptOutType)
# args: the content types refused; text "unreadable" (an image we cannot read or with too
# many pixels) or "failed" (not fetched) when no type was refused.
MEDIA_COMMAND = "sms_media"

Prompt = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Keyword:
    """A keyword message: what it asks for, and its argument."""

    kind: str  # stop, start, yes, help, status, media
    arg: str = ""
    confirmed_by_twilio: bool = False  # Twilio answered it already
    failed: bool = False  # media: it could not be fetched (rather than not an image)
    unreadable: bool = False  # media: fetched, but no image we can read or keep


def classify(text: str) -> Keyword | None:
    """The keyword a whole message is, if any."""
    stripped = text.strip()
    word = stripped.strip(".!。！ ").upper()
    if word in TWILIO_STOP:
        return Keyword("stop", confirmed_by_twilio=True)
    if word in OWN_STOP:
        return Keyword("stop")
    if word in START:
        return Keyword("start")
    if word == "YES":
        return Keyword("yes")
    if word in HELP:
        return Keyword("help")
    status = STATUS.match(stripped)
    if status:
        return Keyword("status", status.group(1).strip())
    return None


def keyword_of(msg: Inbound) -> Keyword | None:
    """The keyword in an inbound message: typed, or as the SMS parser marked it."""
    if msg.kind == Kind.TEXT:
        return classify(msg.text)
    if msg.kind == Kind.COMMAND and msg.command == KEYWORD_COMMAND:
        return Keyword(msg.args, confirmed_by_twilio=True)
    if msg.kind == Kind.COMMAND and msg.command == MEDIA_COMMAND:
        return Keyword("media", msg.args, failed=msg.text == "failed",
                       unreadable=msg.text == "unreadable")
    return None


async def intercept(ctx: Context, reprompt: Prompt) -> bool:
    """Handle an SMS keyword (or a message from an opted-out number); False otherwise."""
    if spec_for(ctx.msg.channel).variant != "sms":
        return False
    keyword = keyword_of(ctx.msg)
    resuming = keyword is not None and keyword.kind in ("start", "yes")
    if ctx.contact.opted_out and not resuming:
        ctx.keep_menu = True  # not handled: nothing is queued for an opted-out number
        return True
    if keyword is None or (keyword.kind == "yes" and not ctx.contact.opted_out):
        return False
    ctx.keep_menu = True
    if keyword.kind == "stop":
        await people_store.set_opted_out(ctx.conn, ctx.msg.channel, ctx.msg.address, True)
        if not keyword.confirmed_by_twilio:
            ctx.opting_out = True
            ctx.say("sms_stopped")
    elif resuming:
        await people_store.set_opted_out(ctx.conn, ctx.msg.channel, ctx.msg.address, False)
        ctx.say("sms_resumed")
        if ctx.conv.flow:
            await reprompt(ctx)
    elif keyword.kind == "help":
        await common.help_(ctx)
    elif keyword.kind == "status":
        await _status(ctx, keyword.arg)
    elif keyword.kind == "media":
        ctx.say("sms_media_refused", kinds=keyword.arg, failed=keyword.failed,
                unreadable=keyword.unreadable)
    return True


async def _status(ctx: Context, arg: str) -> None:
    """STATUS N: the case's status, as /case N shows it."""
    number = common.case_number(ctx, arg)
    if number is None:
        return
    ctx.msg = replace(ctx.msg, kind=Kind.COMMAND, command="case", args=number)
    before = len(ctx.replies)
    await mycases.show_case(ctx)
    if ctx.conv.flow:  # an aside: the case's own menu would replace the dialogue's
        ctx.replies[before:] = [replace(r, choices=()) for r in ctx.replies[before:]]
