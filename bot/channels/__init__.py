"""Provider channels, one folder each (`telegram/`, `sms/`): webhook, reader, sender.

What a channel can carry is data in `bot.domain.channels`; `registry` builds the channels
the settings switch on, and `base.Channel` is what each one plugs into.
"""
