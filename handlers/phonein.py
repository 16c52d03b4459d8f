"""/phonein (代报): a staff member files a case for a caller on the phone.

The caller's number, whether they want SMS, the household if their number is on file in
the staff member's area, then the resident's report dialogue itself (handlers/report.py)
filed on the caller's behalf.
"""

from __future__ import annotations

from bot.domain.messages import Choice, Kind
from bot.services import casework, phonein, phones
from bot.services import households as household_service
from bot.services.render import mask_phone
from handlers import report
from handlers.base import Context
from store import people as people_store

FLOW = "phonein"


async def begin(ctx: Context) -> None:
    """/phonein [NUMBER]: check the role, then ask for the caller's number."""
    role = phonein.filer_role(await people_store.roles_of(ctx.conn, ctx.contact.person_id))
    if role is None:
        ctx.say("not_staff")
        return
    ctx.finish()
    ctx.goto(FLOW, "phone")
    ctx.data.update(role=role[0], scope=role[1])
    typed = ctx.msg.args.strip() if ctx.msg.kind == Kind.COMMAND else ""
    if typed:
        await _take_phone(ctx, typed)
        return
    ctx.say("phonein_phone")


async def handle(ctx: Context) -> bool:
    """The answers before the report dialogue: number, SMS, household."""
    step = ctx.conv.step
    if step == "phone":
        if ctx.msg.kind != Kind.TEXT or not ctx.msg.text.strip():
            ctx.say("phonein_phone")
        else:
            await _take_phone(ctx, ctx.msg.text)
        return True
    if step == "sms":
        if ctx.option in ("sms:yes", "sms:no"):
            ctx.data["sms"] = ctx.option == "sms:yes"
            await _ask_household(ctx)
        else:
            _ask_sms(ctx)
        return True
    if step == "household":
        if ctx.option and ctx.option.startswith("hh:"):
            value = ctx.option[3:]
            await _start_report(ctx, int(value) if value.isdigit() else None)
        else:
            await _ask_household(ctx)
        return True
    return False


async def prompt(ctx: Context) -> None:
    """Ask the question of the step under way again."""
    step = ctx.conv.step
    if step == "sms":
        _ask_sms(ctx)
    elif step == "household":
        await _ask_household(ctx)
    else:
        ctx.say("phonein_phone")


async def _take_phone(ctx: Context, typed: str) -> None:
    phone = phones.to_e164(typed, ctx.reference.phone_region)
    if phone is None:
        ctx.say("phonein_phone_invalid", given=typed.strip()[:20])
        return
    ctx.data["phone"] = phone
    ctx.goto(FLOW, "sms")
    _ask_sms(ctx)


def _ask_sms(ctx: Context) -> None:
    ctx.say("phonein_sms", [Choice("sms:yes", ctx.label("btn.sms_yes")),
                            Choice("sms:no", ctx.label("btn.sms_no"))],
            phone=mask_phone(str(ctx.data.get("phone", ""))))


async def _ask_household(ctx: Context) -> None:
    """Offer the households on file with the caller's number in the staff member's area
    (each listing logged as a read); none: straight on to the report."""
    actors = await casework.staff_actors(ctx.conn, ctx.contact.person_id)
    matched = await phonein.households_for(ctx.conn, ctx.reference, str(ctx.data["phone"]),
                                           actors, ctx.now)
    if not matched:
        await _start_report(ctx, None)
        return
    ctx.goto(FLOW, "household")
    district = ctx.reference.district
    choices = [Choice(f"hh:{h.id}", f"{district.building_name(h.building_id, ctx.locale)} "
                      f"{household_service.short_label(ctx.reference, h, ctx.locale)}")
               for h in matched[:4]]
    choices.append(Choice("hh:none", ctx.label("btn.household_none")))
    ctx.say("phonein_household", choices)


async def _start_report(ctx: Context, household_id: int | None) -> None:
    behalf = {"phone": ctx.data["phone"], "sms": bool(ctx.data.get("sms")),
              "role": ctx.data["role"], "scope": ctx.data.get("scope"),
              "household_id": household_id, "caller_id": None}
    ctx.say("phonein_report", phone=mask_phone(str(behalf["phone"])), sms=behalf["sms"])
    await report.begin(ctx)
    ctx.data[report.ON_BEHALF] = behalf
