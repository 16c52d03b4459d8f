"""Where an inbound message goes: a command, the flow under way, or a new report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.domain.messages import Kind
from bot.domain.workflow import EventKind
from handlers import (
    answers,
    chief,
    common,
    console,
    feedback,
    home,
    join,
    meetings,
    mycases,
    mydata,
    notices,
    phonein,
    report,
    sms_keywords,
    staff,
    visits,
)
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
    "sharephone": common.share_phone,
    "join": join.join,
    "tasks": staff.tasks,
    "stats": staff.stats_command,
    "patrol": chief.patrol,
    "visit": visits.visit,
    "household": visits.household,
    "link": visits.link,
    "phonein": phonein.begin,
    "mydata": mydata.mydata,
    "opinion": chief.opinion,
    "contact": chief.contact,
    "accept": lambda ctx: staff.quick_action(ctx, EventKind.SIGN),
    "done": lambda ctx: staff.quick_action(ctx, EventKind.REPORT_DONE),
    "esc": lambda ctx: staff.quick_action(ctx, EventKind.ESCALATE),
    "notice": notices.begin,
    "meeting": meetings.begin,
    "home": home.home,
    "mute": home.mute,
    "unmute": home.unmute,
    "ack": answers.ack_command,
    "console": console.console_link,
}

# Commands typed without "/" that take words after them (SMS): "JOIN 7KQ2M9", "签收 261123001".
WORD_COMMANDS = {
    "join": "join", "加入": "join",
    "accept": "accept", "签收": "accept",
    "done": "done", "办结": "done",
    "esc": "esc", "上报": "esc",
    "代报": "phonein", "phonein": "phonein",
}

# Buttons that stand on their own, whatever dialogue is under way: the actions of a case
# that arrived as a notice, the resident's answer when a case closes, opening a case.
OPTIONS: dict[str, Handler] = {
    "act": staff.on_action,
    "fixed": feedback.on_fixed,
    "rate": feedback.on_rate,
    "case": mycases.open_case,
    "add": mycases.on_add,
    "ack": answers.on_ack,
    "rsvp": answers.on_rsvp,
    "nshow": notices.on_show,
    "nremind": notices.on_remind,
    "mshow": meetings.on_show,
    "hhv": visits.on_visit_button,
    "hhd": visits.on_delete_button,
    "hhl": visits.on_link_button,
}
# Options whose button data is the value itself, not "MENU:INDEX": bulk messages (notices,
# meetings) carry them without opening a menu. Their handlers check who may answer.
RAW_OPTIONS = ("ack", "rsvp")

# Whole messages that mean a command on channels without a "/" habit (SMS, mostly).
TEXT_COMMANDS = {
    "取消": "cancel", "cancel": "cancel",
    "帮助": "help", "help": "help",
    "我的": "mycases", "我的事件": "mycases",
    "语言": "lang", "language": "lang",
    "收到": "ack", "received": "ack",
    "免打扰": "mute", "mute": "mute",
    "恢复通知": "unmute", "取消免打扰": "unmute", "unmute": "unmute",
    # The word alone: how to use it (with a code it is a WORD_COMMAND).
    "加入": "join", "join": "join",
    "代报": "phonein", "我的资料": "mydata",
}

FLOWS: dict[str, Step] = {
    "report": report.handle,
    "lang": common.lang_step,
    "staff": staff.handle,
    "visit": visits.step,
    "phonein": phonein.handle,
    "opinion": chief.opinion_step,
    "contact": chief.contact_step,
    "add": mycases.add_step,
    "notice": notices.handle,
    "meeting": meetings.handle,
    "home": home.where,
}

PROMPTS: dict[str, Handler] = {
    "report": report.prompt,
    "lang": common.lang_prompt,
    "staff": staff.prompt,
    "visit": visits.prompt,
    "phonein": phonein.prompt,
    "notice": notices.prompt,
    "meeting": meetings.prompt,
    "home": home.prompt,
}


async def route(ctx: Context) -> None:
    """Handle one message: commands first, then the flow under way, else start a report."""
    if await sms_keywords.intercept(ctx, reprompt):  # STOP, HELP, STATUS N... on SMS
        return
    msg = ctx.msg
    prefix = ctx.option.split(":", 1)[0] if ctx.option else None
    if prefix in OPTIONS:
        await OPTIONS[prefix](ctx)
        if prefix in RAW_OPTIONS:  # answered from any dialogue: ask its question again
            await reprompt(ctx)
        return
    command = msg.command if msg.kind == Kind.COMMAND else None
    if command is None and msg.kind == Kind.TEXT:
        command = TEXT_COMMANDS.get(msg.text.strip().lower())
        word, _, rest = msg.text.strip().partition(" ")
        if command is None and rest.strip() and word.lower() in WORD_COMMANDS:
            command = WORD_COMMANDS[word.lower()]
            ctx.msg = msg = replace(msg, kind=Kind.COMMAND, command=command, args=rest.strip())
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
    if await answers.typed_answer(ctx):  # "1" answering a notice or an invitation (SMS)
        return
    await report.begin(ctx, msg.text if msg.kind == Kind.TEXT else None)


async def reprompt(ctx: Context) -> None:
    """Ask the question of the step under way again, if any."""
    flow = ctx.conv.flow
    if flow in PROMPTS:
        await PROMPTS[flow](ctx)
