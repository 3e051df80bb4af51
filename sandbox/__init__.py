"""A Slack emulator on loopback: the Web API, response URLs and signed requests to the bot.

It stands in for the Slack we do not own, in end-to-end tests and behind `baton dev`. The
real `slack_sdk.WebClient` (with `base_url=server.api_url`) and a real `slack_bolt` App in
HTTP mode talk to it as they talk to Slack.

    with EmulatorServer(workspace_from_org(org)) as slack:
        client = WebClient(token=slack.workspace.app.bot_token, base_url=slack.api_url)
        driver = slack.driver(f"{bot_url}/slack/events")
        driver.slash_command("run vendor-payment amount=12000", user="U0ALICE01", channel="payments")
"""

from sandbox.app import Emulator
from sandbox.calls import Call, CallLog
from sandbox.driver import Delivery, Driver, Signing, SlackRequest, signature
from sandbox.errors import ApiError, SandboxError
from sandbox.faults import Fault, FaultPlan
from sandbox.from_org import seed_from_org, workspace_from_org
from sandbox.records import SlackApp, Team
from sandbox.server import EmulatorServer, LoopbackServer
from sandbox.workspace import Workspace

__all__ = [
    "ApiError",
    "Call",
    "CallLog",
    "Delivery",
    "Driver",
    "Emulator",
    "EmulatorServer",
    "Fault",
    "FaultPlan",
    "LoopbackServer",
    "SandboxError",
    "Signing",
    "SlackApp",
    "SlackRequest",
    "Team",
    "Workspace",
    "seed_from_org",
    "signature",
    "workspace_from_org",
]
