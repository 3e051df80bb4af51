"""The sandbox page: a small Slack in the browser over the emulator's workspace.

`mrkdwn` and `blocks` draw Slack text and Block Kit as escaped HTML, `pages` draws the
page's pieces for one viewer, and `routes` serves them and turns what people do into the
signed requests Slack would send to the bot. Plain HTML, CSS and JavaScript in `static/`,
no build step.
"""
