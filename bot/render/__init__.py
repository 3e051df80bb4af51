"""Pure Block Kit renderers: domain state in, Slack JSON out. No I/O, easy to snapshot."""
