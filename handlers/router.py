"""Where an inbound message goes: a command, the flow under way, or a new report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.messages import Kind
from handlers import common, mycases, report
from handlers.base import Context

Handler = Callable[[Context], Awaitable[None]]
Step = Callable[[Context], Awaitable[bool]]

COMMANDS: dict[str, Handler] = {
    "start": common.start,
    "help": common.help_,
    "lang": common.lang,
    "cancel": common.cancel,
    "report": report.begin,
    "mycases": mycases.list_cases,
    "case": mycases.show_case,
}

# Whole messages that mean a command on channels without a "/" habit (SMS, mostly).
TEXT_COMMANDS = {
    "取消": "cancel", "cancel": "cancel",
    "帮助": "help", "help": "help",
    "我的": "mycases", "我的事件": "mycases",
    "语言": "lang", "language": "lang",
}

FLOWS: dict[str, Step] = {
    "report": report.handle,
    "lang": common.lang_step,
    "mycases": mycases.pick,
}

PROMPTS: dict[str, Handler] = {
    "report": report.prompt,
    "lang": common.lang_prompt,
}


async def route(ctx: Context) -> None:
    """Handle one message: commands first, then the flow under way, else start a report."""
    msg = ctx.msg
    command = msg.command if msg.kind == Kind.COMMAND else None
    if command is None and msg.kind == Kind.TEXT:
        command = TEXT_COMMANDS.get(msg.text.strip().lower())
    if command is not None:
        handler = COMMANDS.get(command)
        if handler is None:
            ctx.say("unknown_command", command=command)
            await reprompt(ctx)
            return
        await handler(ctx)
        return

    flow = ctx.conv.flow
    if flow in FLOWS and await FLOWS[flow](ctx):
        return
    if flow is not None:
        ctx.finish()
    await idle(ctx)


async def idle(ctx: Context) -> None:
    """No dialogue under way: words, a photo or a pin start a report."""
    msg = ctx.msg
    if msg.kind == Kind.TEXT and not msg.text.strip():
        ctx.say("empty_message")
        return
    if msg.kind == Kind.OPTION:
        ctx.say("menu_stale")
        return
    await report.begin(ctx, msg.text if msg.kind == Kind.TEXT else None)


async def reprompt(ctx: Context) -> None:
    """Ask the question of the step under way again, if any."""
    flow = ctx.conv.flow
    if flow in PROMPTS:
        await PROMPTS[flow](ctx)
